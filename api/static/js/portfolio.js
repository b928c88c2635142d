// Portfolio view: the sites on the map and in a sortable, filterable table.

import { esc, getJSON } from "./api.js";
import { bandBadge, sitesLayer } from "./map.js";
import { PAGE_ROWS, renderPager } from "./pager.js";

const state = {
  features: [],
  scores: new Map(), // loan_id -> newest score item
  progress: new Map(), // site_id -> newest progress summary (absent: none computed yet)
  openAlerts: new Map(), // site_id -> count
  sort: { key: "score", dir: 1 },
  page: 0, // of the sorted table, PAGE_ROWS rows each
  layer: null,
};

const table = () => document.querySelector("#sites-table");
const status = (text) => {
  document.querySelector("#portfolio-status").textContent = text;
};

async function fetchAllScores() {
  let cursor = null;
  do {
    const page = await getJSON(`/v1/scores?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    for (const item of page.items) state.scores.set(item.loan_id, item);
    cursor = page.next_cursor;
  } while (cursor);
}

async function fetchOpenAlerts() {
  const alerts = await getJSON("/v1/alerts?status=open&limit=1000");
  state.openAlerts.clear();
  for (const a of alerts.items) state.openAlerts.set(a.site_id, (state.openAlerts.get(a.site_id) || 0) + 1);
}

/** Every site's newest progress from the paginated portfolio summary: one request per 1000 sites, not one per site. */
async function fetchAllProgress() {
  const progress = new Map();
  let cursor = null;
  do {
    const page = await getJSON(`/v1/progress?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    for (const item of page.items) progress.set(item.site_id, item);
    cursor = page.next_cursor;
  } while (cursor);
  state.progress = progress;
}

function row(f) {
  const p = f.properties;
  const score = state.scores.get(p.loan_id);
  const prog = state.progress.get(p.id);
  return {
    id: p.id,
    name: p.name,
    loan: p.loan_id,
    borrower: p.borrower || p.loan_id,
    observed: prog?.observed_pct ?? null,
    planned: prog?.planned_pct ?? null,
    deviation: prog?.deviation_pp ?? null,
    slip: prog?.slip_days ?? null,
    stalled: Boolean(prog?.stalled),
    score: score ? score.score : null,
    band: p.band || score?.band || null,
    alerts: state.openAlerts.get(p.id) || 0,
  };
}

function compare(a, b) {
  const { key, dir } = state.sort;
  const va = a[key];
  const vb = b[key];
  if (va === null && vb === null) return a.name.localeCompare(b.name);
  if (va === null) return 1; // unknowns last, whichever the direction
  if (vb === null) return -1;
  const c = typeof va === "string" ? va.localeCompare(vb) : va - vb;
  return c * dir || a.name.localeCompare(b.name);
}

const num = (v, digits = 1) => (v === null ? "–" : Number(v).toFixed(digits));

export function renderTable() {
  const sorted = state.features.map(row).sort(compare);
  const pages = Math.max(1, Math.ceil(sorted.length / PAGE_ROWS));
  state.page = Math.min(state.page, pages - 1);
  const rows = sorted.slice(state.page * PAGE_ROWS, (state.page + 1) * PAGE_ROWS);
  renderPager(document.querySelector("#sites-pager"), {
    page: state.page,
    pages,
    total: sorted.length,
    onPage: (page) => {
      state.page = page;
      renderTable();
      table().tBodies[0].rows[0]?.focus();
    },
  });
  const body = table().tBodies[0];
  body.innerHTML = rows
    .map(
      (r) => `<tr tabindex="0" data-site-id="${esc(r.id)}" data-score="${r.score ?? ""}" data-band="${esc(r.band ?? "")}">
        <td><span class="site-name">${esc(r.name)}</span><span class="site-id">${esc(r.id)}</span></td>
        <td>${esc(r.borrower)}</td>
        <td class="num ${r.deviation !== null && r.deviation < -5 ? "behind" : ""}">${num(r.observed)} / ${num(r.planned)}${r.stalled ? ' <span class="tag">stalled</span>' : ""}</td>
        <td class="num">${r.slip === null ? "–" : r.slip}</td>
        <td class="num">${num(r.score, 0)}</td>
        <td>${bandBadge(r.band)}</td>
        <td class="num">${r.alerts}</td>
      </tr>`,
    )
    .join("");
  for (const th of table().tHead.rows[0].cells) {
    th.setAttribute("aria-sort", th.dataset.key === state.sort.key ? (state.sort.dir > 0 ? "ascending" : "descending") : "none");
  }
}

function drawSites(map, onOpen) {
  if (state.layer) map.removeLayer(state.layer.group);
  state.layer = sitesLayer(state.features, onOpen);
  state.layer.group.addTo(map);
}

export function fitAll(map) {
  if (state.layer && state.features.length) map.fitBounds(state.layer.group.getBounds(), { padding: [30, 30], maxZoom: 14 });
}

export function siteBounds(siteId) {
  return state.layer?.byId.get(siteId)?.bounds || null;
}

export function siteFeature(siteId) {
  return state.features.find((f) => f.properties.id === siteId) || null;
}

/** Refetch open-alert counts (after an acknowledgement) and redraw the table. */
export async function refreshAlerts() {
  await fetchOpenAlerts();
  renderTable();
}

async function applyFilters(map, onOpen) {
  const params = new URLSearchParams();
  const band = document.querySelector("#filter-band").value;
  const region = document.querySelector("#filter-region").value;
  const q = document.querySelector("#filter-q").value.trim();
  if (band) params.set("band", band);
  if (region) params.set("region", region);
  if (q) params.set("q", q);
  const collection = await getJSON(`/v1/sites${params.size ? `?${params}` : ""}`);
  state.features = collection.features;
  state.page = 0;
  drawSites(map, onOpen);
  renderTable();
  status(`${state.features.length} site${state.features.length === 1 ? "" : "s"}`);
  if (state.features.length) fitAll(map);
}

export async function loadPortfolio(map, onOpen) {
  status("Loading sites…");
  const [collection] = await Promise.all([getJSON("/v1/sites"), fetchAllScores(), fetchOpenAlerts(), fetchAllProgress()]);
  state.features = collection.features;
  const regions = [...new Set(state.features.map((f) => f.properties.region))].sort();
  const select = document.querySelector("#filter-region");
  for (const r of regions) select.add(new Option(r, r));
  drawSites(map, onOpen);
  renderTable();
  fitAll(map);
  status(`${state.features.length} sites`);

  // sorting
  for (const th of table().tHead.rows[0].cells) {
    th.querySelector("button").addEventListener("click", () => {
      const key = th.dataset.key;
      state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : 1 };
      state.page = 0;
      renderTable();
    });
  }
  // open a site: click or Enter on a row
  const body = table().tBodies[0];
  body.addEventListener("click", (e) => {
    const tr = e.target.closest("tr[data-site-id]");
    if (tr) onOpen(tr.dataset.siteId);
  });
  body.addEventListener("keydown", (e) => {
    const tr = e.target.closest("tr[data-site-id]");
    if (!tr) return;
    if (e.key === "Enter") {
      e.preventDefault();
      onOpen(tr.dataset.siteId);
    } else if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      (e.key === "ArrowDown" ? tr.nextElementSibling : tr.previousElementSibling)?.focus();
    }
  });
  // filters: band and region at once, text after a pause
  let timer = null;
  const run = () => applyFilters(map, onOpen).catch((err) => status(`Could not filter: ${err.message}`));
  document.querySelector("#filter-band").addEventListener("change", run);
  document.querySelector("#filter-region").addEventListener("change", run);
  document.querySelector("#filter-q").addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(run, 300);
  });
  document.querySelector("#filters").addEventListener("submit", (e) => {
    e.preventDefault();
    run();
  });
}
