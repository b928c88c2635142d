// The Leaflet map: a plain background (no internet basemap), a graticule, site markers labelled
// with their risk band, and tile layers fetched with the API key.

/* global L */
import { esc, request } from "./api.js";

export const BANDS = ["A", "B", "C", "D", "E"];
export const BAND_COLOURS = { A: "#0072b2", B: "#56b4e9", C: "#f0e442", D: "#e69f00", E: "#d55e00" };
const NO_BAND = "#999999";

export const bandBadge = (band) =>
  `<span class="badge ${band ? `band-${esc(band)}` : "band-none"}" title="risk band ${esc(band || "not scored")}">${esc(band || "–")}</span>`;

export function createMap(element) {
  const map = L.map(element, { minZoom: 1, maxZoom: 20, worldCopyJump: false, zoomSnap: 0.5 });
  const graticule = L.layerGroup().addTo(map);
  for (let lon = -180; lon <= 180; lon += 30) {
    L.polyline([[-85, lon], [85, lon]], { color: "#b9c4ce", weight: 1, interactive: false, className: "graticule" }).addTo(graticule);
  }
  for (let lat = -60; lat <= 60; lat += 30) {
    L.polyline([[lat, -180], [lat, 180]], { color: "#b9c4ce", weight: 1, interactive: false, className: "graticule" }).addTo(graticule);
  }
  map.setView([20, 0], 2);
  return map;
}

/** Above this many sites, outlines and markers share one canvas instead of a DOM node each (2 000 sites
 * as DOM markers and SVG paths make panning stutter). The table keeps every site reachable by keyboard. */
export const CANVAS_ABOVE = 300;
/** On a canvas map, band-lettered (and keyboard-reachable) markers are added for the sites in view once
 * there are at most this many in view, so the letter is never lost when zoomed in. */
const LETTERED_IN_VIEW = 150;

function letteredMarker(f, centre, open) {
  const band = f.properties.band;
  const marker = L.marker(centre, {
    icon: L.divIcon({ className: "site-marker", html: bandBadge(band), iconSize: [24, 24], iconAnchor: [12, 12] }),
    title: `${f.properties.name} (${f.properties.id}), band ${band || "not scored"}`,
    alt: f.properties.name,
    keyboard: true,
    riseOnHover: true,
  });
  marker.on("click", open);
  marker.on("keypress", (e) => {
    if (e.originalEvent.key === "Enter") open();
  });
  return marker;
}

/** Site outlines and band-lettered markers; ``onOpen(siteId)`` on click or Enter on a marker. */
export function sitesLayer(features, onOpen) {
  const group = L.featureGroup();
  const byId = new Map();
  const canvas = features.length > CANVAS_ABOVE ? L.canvas({ padding: 0.5, tolerance: 3 }) : null;
  for (const f of features) {
    const band = f.properties.band;
    const colour = BAND_COLOURS[band] || NO_BAND;
    const outline = L.geoJSON(f, {
      style: { color: "#1b1f24", weight: 1.5, fillColor: colour, fillOpacity: 0.35, className: canvas ? undefined : "site-outline" },
      renderer: canvas || undefined,
    });
    const bounds = outline.getBounds();
    const open = () => onOpen(f.properties.id);
    const marker = canvas
      ? L.circleMarker(bounds.getCenter(), { renderer: canvas, radius: 6, color: "#1b1f24", weight: 1, fillColor: colour, fillOpacity: 0.95 })
      : letteredMarker(f, bounds.getCenter(), open);
    if (canvas) marker.on("click", open);
    outline.on("click", open);
    marker.bindTooltip(`${esc(f.properties.name)}<br>band ${esc(band || "–")}`, { direction: "top", offset: [0, -10] });
    marker.options.siteId = f.properties.id;
    group.addLayer(outline);
    group.addLayer(marker);
    byId.set(f.properties.id, { outline, marker, bounds, feature: f, open });
  }
  const letters = L.layerGroup();
  const letter = () => {
    const map = group._map;
    if (!map) return;
    letters.clearLayers();
    const view = map.getBounds();
    const inView = [...byId.values()].filter((s) => view.contains(s.bounds.getCenter()));
    if (inView.length > LETTERED_IN_VIEW) return;
    for (const s of inView) letters.addLayer(letteredMarker(s.feature, s.bounds.getCenter(), s.open));
  };
  // how many sites are drawn, and how, for people and tests reading the page
  group.on("add", () => {
    const map = group._map;
    const box = map.getContainer();
    box.dataset.sites = String(features.length);
    box.dataset.renderer = canvas ? "canvas" : "dom";
    if (canvas) {
      letters.addTo(map);
      map.on("moveend", letter);
      letter();
    }
  });
  group.on("remove", (e) => {
    e.target._map?.off("moveend", letter);
    letters.remove();
  });
  return { group, byId };
}

/** A TileJSON layer whose tiles are fetched with the API key (an <img> cannot send it). */
export const AuthTileLayer = L.TileLayer.extend({
  createTile(coords, done) {
    const img = document.createElement("img");
    img.alt = "";
    img.setAttribute("role", "presentation");
    request(this.getTileUrl(coords), { accept: "image/png" })
      .then((response) => response.blob())
      .then((blob) => {
        const url = URL.createObjectURL(blob);
        img.onload = () => {
          URL.revokeObjectURL(url);
          done(null, img);
        };
        img.onerror = () => done(new Error("bad tile"), img);
        img.src = url;
      })
      .catch((err) => done(err, img));
    return img;
  },
});

export function tileLayerFromTileJSON(tj, options = {}) {
  const [w, s, e, n] = tj.bounds;
  return new AuthTileLayer(tj.tiles[0], {
    minZoom: Math.max(tj.minzoom - 4, 0),
    minNativeZoom: tj.minzoom,
    maxNativeZoom: tj.maxzoom,
    maxZoom: 20,
    bounds: L.latLngBounds([s, w], [n, e]),
    attribution: tj.attribution || "Contains modified Copernicus Sentinel data",
    ...options,
  });
}
