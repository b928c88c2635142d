// Site view: imagery through time, change overlay, planned footprints, progress and activity charts,
// score with its history, alerts, the watch-list case with its notes, and the downloads (CSV, PDF).

/* global L */
import { ApiError, esc, getJSON, getJSONOrNull, postJSON, request } from "./api.js";
import { renderProgressChart } from "./chart.js";
import { renderActivityChart, renderScoreHistory } from "./sitecharts.js";
import { bandBadge, tileLayerFromTileJSON } from "./map.js";

// Okabe-Ito hues not used for bands, and a dash per phase, so phases differ without colour too.
const PHASE_STYLES = [
  ["#009e73", null], ["#cc79a7", "8 4"], ["#000000", "2 4"], ["#0072b2", "12 4 2 4"], ["#e69f00", "4 4"],
];

const $ = (sel) => document.querySelector(sel);

let current = null; // { id, layers: [...], scenes, ... } of the open site

export function closeSite(map) {
  if (!current) return;
  for (const layer of current.layers) map.removeLayer(layer);
  if (current.trueColour) map.removeLayer(current.trueColour);
  if (current.change) map.removeLayer(current.change);
  current = null;
}

function footprints(map, feature) {
  const legend = $("#phase-legend");
  legend.replaceChildren();
  const group = L.featureGroup();
  L.geoJSON(feature.geometry, { style: { color: "#1b1f24", weight: 2, fill: false, className: "site-boundary" } }).addTo(group);
  feature.properties.plan.phases.forEach((phase, i) => {
    const [colour, dash] = PHASE_STYLES[i % PHASE_STYLES.length];
    L.geoJSON(phase.footprint, {
      style: { color: colour, weight: 3, dashArray: dash, fill: false, className: "phase-footprint" },
    })
      .bindTooltip(`${esc(phase.name)}: ${phase.start} – ${phase.end} (weight ${phase.weight})`, { sticky: true })
      .addTo(group);
    const li = document.createElement("li");
    li.innerHTML = `<span class="swatch" style="border-color:${colour};${dash ? "border-style:dashed" : ""}"></span>${esc(phase.name)} <small>${phase.start} – ${phase.end}</small>`;
    legend.append(li);
  });
  group.addTo(map);
  return group;
}

// ---------------------------------------------------------------- scenes

async function showScene(map, index) {
  const site = current;
  const scene = site.scenes[index];
  const caption = $("#scene-caption");
  $("#scene-slider").setAttribute("aria-valuetext", sceneText(scene));
  for (const li of $("#scene-list").children) li.classList.toggle("current", Number(li.dataset.index) === index);
  if (site.trueColour) map.removeLayer(site.trueColour);
  site.trueColour = null;
  if (!scene.used) {
    caption.textContent = `${sceneText(scene)}: no image shown.`;
    await showChange(map);
    return;
  }
  caption.textContent = sceneText(scene);
  try {
    const tj = await getJSON(scene.tilejson);
    if (current !== site || site.sceneIndex !== index) return; // the user moved on
    site.trueColour = tileLayerFromTileJSON(tj, { className: "true-colour", zIndex: 2 }).addTo(map);
  } catch (err) {
    caption.textContent = `${sceneText(scene)}: imagery unavailable (${err.message}).`;
  }
  await showChange(map);
}

async function showChange(map) {
  const site = current;
  if (site.change) map.removeLayer(site.change);
  site.change = null;
  const note = $("#change-status");
  note.textContent = "";
  if (!$("#change-toggle").checked) return;
  const scene = site.scenes[site.sceneIndex];
  if (!scene || !scene.used) {
    note.textContent = "No change overlay for a skipped scene.";
    return;
  }
  try {
    const tj = await getJSON(scene.change_tilejson);
    if (current !== site) return;
    site.change = tileLayerFromTileJSON(tj, { className: "change-overlay", zIndex: 3, opacity: 0.85 });
    site.change.on("tileerror", () => {
      note.textContent = "Some change tiles could not be computed for this scene.";
    });
    site.change.addTo(map);
    note.textContent = "Change probability against the pre-construction baseline (red).";
  } catch (err) {
    note.textContent = `Change overlay unavailable: ${err.message}`;
  }
}

const sceneDate = (s) => s.acquired_at.slice(0, 10);
function sceneText(s) {
  const cloud = s.cloud_pct === null ? "" : `, ${Math.round(s.cloud_pct)}% cloud`;
  return s.used ? `${sceneDate(s)} (used${cloud})` : `${sceneDate(s)} (skipped: ${s.reason || "no reason recorded"}${cloud})`;
}

function renderScenes(map, scenes) {
  const slider = $("#scene-slider");
  const list = $("#scene-list");
  list.innerHTML = scenes
    .map(
      (s, i) => `<li data-index="${i}" data-scene-id="${esc(s.scene_id)}" class="${s.used ? "used" : "skipped"}"
        title="${esc(s.scene_id)}">${esc(sceneText(s))}</li>`,
    )
    .join("");
  if (!scenes.length) {
    slider.disabled = true;
    $("#scene-caption").textContent = "No scenes recorded yet.";
    return;
  }
  let newestUsed = -1;
  scenes.forEach((s, i) => {
    if (s.used) newestUsed = i;
  });
  current.sceneIndex = newestUsed >= 0 ? newestUsed : scenes.length - 1;
  slider.disabled = false;
  slider.max = String(scenes.length - 1);
  slider.value = String(current.sceneIndex);
  showScene(map, current.sceneIndex);
}

// ---------------------------------------------------------------- progress, score, alerts

function renderProgress(feature, progress) {
  const chart = $("#progress-chart");
  const text = $("#progress-summary");
  if (!progress) {
    chart.replaceChildren();
    text.textContent = "No progress computed yet for this site.";
    return;
  }
  const s = progress.summary;
  renderProgressChart(chart, { plan: feature.properties.plan, summary: s, series: progress.series });
  const parts = [
    `Observed ${s.observed_pct ?? "–"}% (${s.lower_pct ?? "–"}–${s.upper_pct ?? "–"}) vs planned ${s.planned_pct}% on ${s.as_of}`,
    s.slip_days === null ? null : `${s.slip_days} days ${s.slip_days >= 0 ? "behind" : "ahead of"} plan`,
    s.stalled ? `stalled (seen by ${(s.stall_witnesses ?? []).join(" and ") || "imagery"})` : null,
    s.stall_check === "disputed" ? "stall disputed: imagery sees no progress, sensors see work" : null,
    s.forecast_completion ? `forecast completion ${s.forecast_completion}` : "no completion forecast",
    `${s.scenes_used} scenes used, ${s.scenes_skipped} skipped; method ${s.method}`,
    // Reversals (demolition, a cancelled project) and scenes set aside against idle sensors.
    ...(s.events ?? []).map((e) => `${e.kind.replaceAll("_", " ")} on ${e.on}: ${e.detail}`),
  ];
  text.textContent = parts.filter(Boolean).join(" · ");
}

function renderScore(score) {
  const box = $("#score");
  if (!score) {
    box.innerHTML = `<p class="meta">Not scored yet.</p>`;
    return;
  }
  const top = new Set(score.top_drivers);
  const maxShort = Math.max(1, ...score.drivers.map((d) => d.shortfall || 0));
  const drivers = [...score.drivers].sort((a, b) => (b.shortfall || 0) - (a.shortfall || 0));
  box.innerHTML = `
    <p class="score-head" data-score="${score.score}" data-band="${esc(score.band)}">Score <strong>${score.score}</strong>
      ${bandBadge(score.band)} · PD ${(score.pd * 100).toFixed(2)}% · confidence ${Math.round(score.confidence * 100)}%</p>
    <p class="meta">As of ${esc(score.as_of)}, ${esc(score.config_version)}${score.missing.length ? `; missing inputs: ${esc(score.missing.join(", "))}` : ""}</p>
    <table class="drivers"><caption class="meta">Drivers, largest shortfall first (points lost against the best bin)</caption>
      <thead><tr><th>driver</th><th>value</th><th>bin</th><th>points</th><th>shortfall</th></tr></thead>
      <tbody>${drivers
        .map(
          (d) => `<tr class="${d.status === "missing" ? "missing" : ""} ${top.has(d.driver) ? "top" : ""}" data-driver="${esc(d.driver)}">
            <td>${esc(d.driver.replaceAll("_", " "))}</td><td>${d.value === null ? "missing" : esc(d.value)}</td>
            <td>${esc(d.bin)}</td><td class="num">${d.points}</td>
            <td class="num"><span class="bar" style="width:${(40 * (d.shortfall || 0)) / maxShort}px"></span> ${d.shortfall}</td></tr>`,
        )
        .join("")}</tbody></table>
    <p class="meta">Score history (${score.history.length} score${score.history.length === 1 ? "" : "s"})</p>
    <div id="score-history" class="chart"></div>`;
  renderScoreHistory(box.querySelector("#score-history"), score.history);
}

// ---------------------------------------------------------------- sensor activity, case

async function loadActivity(siteId) {
  const chart = $("#activity-chart");
  const text = $("#activity-summary");
  const activity = await getJSONOrNull(`/v1/sites/${encodeURIComponent(siteId)}/activity`);
  if (!activity || !activity.items.length) {
    chart.replaceChildren();
    text.textContent = "No sensor activity recorded.";
    return;
  }
  renderActivityChart(chart, activity);
  const mean = (values) => (values.length ? values.reduce((a, v) => a + v, 0) / values.length : null);
  const seen = activity.items.filter((d) => d.readings > 0);
  const hours = mean(activity.items.map((d) => d.equipment_hours).filter((v) => v !== null));
  const index = mean(activity.items.map((d) => d.activity_index).filter((v) => v !== null));
  const silent = activity.items.at(-1).site_silent;
  text.textContent =
    `${seen.length} of ${activity.count} days with sensor data up to ${activity.as_of}` +
    (hours === null ? "" : ` · ${hours.toFixed(1)} equipment hours a day on average`) +
    (index === null ? "" : ` · mean activity index ${index.toFixed(2)} (1 = usual)`) +
    (silent ? " · site silent on the last day" : "");
}

function noteItem(n) {
  const li = document.createElement("li");
  li.innerHTML = `<span class="meta">${esc(n.at.slice(0, 16).replace("T", " "))}, ${esc(n.by)}:</span> ${esc(n.note)}`;
  return li;
}

async function loadCase(loanId) {
  const box = $("#case");
  const status = $("#case-status");
  const cases = await getJSON(`/v1/cases?status=open&loan_id=${encodeURIComponent(loanId)}`);
  box.replaceChildren();
  const c = cases.items[0];
  if (!c) {
    status.textContent = "No open watch-list case for this loan.";
    return;
  }
  status.textContent = "";
  const notes = await getJSON(`/v1/cases/${c.id}/notes`);
  box.dataset.caseId = c.id;
  box.innerHTML = `<p><strong>Case ${c.id}</strong> (${esc(c.status)}, ${esc(c.severity)}), opened ${esc(c.opened_at.slice(0, 10))}
      by ${esc(c.opened_by)}: ${esc(c.reason)}</p>
    <p class="meta">Response plan: ${esc(c.response_plan || "none yet")} · alerts ${c.alert_ids.map((i) => esc(i)).join(", ") || "–"}</p>
    <ul class="tasks">${c.tasks
      .map((t) => `<li data-task-id="${t.id}" data-status="${esc(t.status)}">[${esc(t.status)}] ${esc(t.department.replaceAll("_", " "))}: ${esc(t.title)} — ${esc(t.owner)}, due ${esc(t.due_date)}</li>`)
      .join("")}</ul>
    <p class="meta">Notes</p>
    <ul class="notes"></ul>`;
  const list = box.querySelector(".notes");
  list.replaceChildren(...notes.items.map(noteItem));
  const form = document.createElement("form");
  form.innerHTML = `<input name="note" maxlength="2000" required placeholder="Add a note to the case" aria-label="Note for case ${c.id}">
    <button type="submit">Add note</button>`;
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const added = await postJSON(`/v1/cases/${c.id}/notes`, { note: form.note.value });
      list.append(...added.items.map(noteItem));
      form.note.value = "";
      status.textContent = `Note added to case ${c.id}.`;
    } catch (err) {
      status.textContent = `Could not add the note: ${err.message}`;
    } finally {
      button.disabled = false;
    }
  });
  box.append(form);
}

function alertItem(a) {
  const li = document.createElement("li");
  li.className = `sev-${a.severity}`;
  li.dataset.alertId = a.id;
  li.dataset.status = a.status;
  const who =
    a.status === "acknowledged"
      ? ` by ${esc(a.acknowledged_by)} on ${esc(a.acknowledged_at?.slice(0, 16).replace("T", " "))}${a.acknowledge_note ? `: “${esc(a.acknowledge_note)}”` : ""}`
      : a.status === "resolved"
        ? ` by ${esc(a.resolved_by || "the rules")} on ${esc(a.resolved_at?.slice(0, 10))}`
        : "";
  li.innerHTML = `<span class="alert-status">${esc(a.status)}</span> <strong>${esc(a.severity)}</strong> — ${esc(a.title)}
    <div class="meta">opened ${esc(a.opened_at.slice(0, 10))}, rule ${esc(a.rule_id)}${who}</div>`;
  if (a.status === "open") {
    const form = document.createElement("form");
    form.innerHTML = `<input name="note" maxlength="2000" placeholder="Note (optional)" aria-label="Note for alert ${a.id}">
      <button type="submit">Acknowledge</button>`;
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const button = form.querySelector("button");
      button.disabled = true;
      try {
        const updated = await postJSON(`/v1/alerts/${a.id}/acknowledge`, { note: form.note.value });
        li.replaceWith(alertItem(updated));
        $("#alerts-status").textContent = `Alert ${a.id} acknowledged.`;
        current?.onAlertsChanged?.();
      } catch (err) {
        button.disabled = false;
        $("#alerts-status").textContent =
          err instanceof ApiError && err.status === 409 ? `Alert ${a.id} is no longer open: ${err.detail}` : `Could not acknowledge: ${err.message}`;
        if (err instanceof ApiError && err.status === 409) loadAlerts(current.loanId);
      }
    });
    li.append(form);
  }
  return li;
}

async function loadAlerts(loanId) {
  const alerts = await getJSON(`/v1/alerts?loan_id=${encodeURIComponent(loanId)}`);
  const list = $("#alerts");
  list.replaceChildren(...alerts.items.map(alertItem));
  $("#alerts-status").textContent = alerts.count ? "" : "No alerts.";
}

/** Fetch a file with the key (a plain link cannot send it) and hand it to the browser as a download. */
async function downloadWithKey(event) {
  event.preventDefault();
  const link = event.currentTarget;
  const note = $("#download-status");
  note.textContent = link.dataset.busy || "";
  let response;
  try {
    response = await request(link.dataset.href, { accept: link.dataset.accept });
  } catch (err) {
    note.textContent = `Download failed: ${err.message}`;
    return;
  }
  note.textContent = "";
  const url = URL.createObjectURL(await response.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = link.getAttribute("download");
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// ---------------------------------------------------------------- open

export async function openSite(map, siteId, { bounds, onAlertsChanged } = {}) {
  closeSite(map);
  const id = encodeURIComponent(siteId);
  const site = { id: siteId, layers: [], onAlertsChanged };
  current = site;
  $("#site-title").textContent = siteId;
  $("#site-meta").textContent = "Loading…";
  for (const sel of ["#progress-chart", "#score", "#alerts", "#scene-list", "#phase-legend", "#activity-chart", "#case"]) {
    $(sel).replaceChildren();
  }
  for (const sel of ["#progress-summary", "#activity-summary", "#case-status", "#download-status"]) $(sel).textContent = "";
  $("#scene-caption").textContent = "";
  $("#change-status").textContent = "";
  $("#alerts-status").textContent = "";
  if (bounds) map.flyToBounds(bounds, { maxZoom: 16, duration: 0.8 });

  const feature = await getJSON(`/v1/sites/${id}`);
  if (current !== site) return;
  const p = feature.properties;
  site.loanId = p.loan_id;
  $("#site-title").textContent = p.name;
  $("#site-meta").innerHTML = `${esc(p.id)} · loan ${esc(p.loan_id)}${p.borrower ? ` · ${esc(p.borrower)}` : ""} · ${esc(p.region)} ·
    plan ${esc(p.plan.start)} – ${esc(p.plan.end)} · band ${bandBadge(p.band)}`;
  const csv = $("#csv-link");
  csv.dataset.href = `/v1/sites/${id}/progress?format=csv`;
  csv.setAttribute("href", csv.dataset.href);
  csv.setAttribute("download", `${siteId}-progress.csv`);
  csv.dataset.accept = "text/csv";
  csv.onclick = downloadWithKey;
  const pdf = $("#pdf-link");
  pdf.dataset.href = `/v1/sites/${id}/report.pdf`;
  pdf.dataset.accept = "application/pdf";
  pdf.dataset.busy = "Rendering the report…";
  pdf.setAttribute("href", pdf.dataset.href);
  pdf.setAttribute("download", `${siteId}-report.pdf`);
  pdf.onclick = downloadWithKey;

  const group = footprints(map, feature);
  site.layers.push(group);
  if (!bounds) map.flyToBounds(group.getBounds(), { maxZoom: 16, duration: 0.8 });

  const [scenes, progress, score] = await Promise.all([
    getJSON(`/v1/sites/${id}/scenes`),
    getJSONOrNull(`/v1/sites/${id}/progress`),
    getJSONOrNull(`/v1/loans/${encodeURIComponent(p.loan_id)}/score`),
    loadAlerts(p.loan_id),
    loadActivity(siteId),
    loadCase(p.loan_id),
  ]);
  if (current !== site) return;
  site.scenes = [...scenes.items].sort((a, b) => a.acquired_at.localeCompare(b.acquired_at));
  renderScenes(map, site.scenes);
  renderProgress(feature, progress);
  renderScore(score);
  $("#site").dataset.loaded = siteId;
}

export function wireSiteControls(map) {
  $("#scene-slider").addEventListener("input", (e) => {
    if (!current?.scenes) return;
    current.sceneIndex = Number(e.target.value);
    showScene(map, current.sceneIndex);
  });
  $("#change-toggle").addEventListener("change", () => current?.scenes && showChange(map));
}
