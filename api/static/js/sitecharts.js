// Small SVG charts of the site view: daily sensor activity and the score history.
// Values are on data-* attributes too, so tests and scripts can read them.

import { fromDay, toDay } from "./plan.js";
import { el, fmt } from "./svg.js";

const W = 560;
const M = { left: 40, right: 14, top: 12, bottom: 26 };

function axes(svg, { H, x0, x1, x, y, ticks, unit = "" }) {
  const axis = el("g", { class: "axis" });
  for (const v of ticks) {
    axis.append(el("line", { class: "grid", x1: M.left, x2: W - M.right, y1: y(v), y2: y(v) }));
    axis.append(el("text", { x: M.left - 4, y: y(v) + 4, "text-anchor": "end" }, `${v}${unit}`));
  }
  const span = x1 - x0;
  const step = span > 400 ? 91 : span > 120 ? 30 : 7;
  for (let d = x0; d <= x1; d += step) {
    axis.append(el("text", { x: x(d), y: H - M.bottom + 14, "text-anchor": "middle" }, fromDay(d).slice(span > 120 ? 0 : 5, span > 120 ? 7 : 10)));
  }
  axis.append(el("line", { x1: M.left, x2: W - M.right, y1: H - M.bottom, y2: H - M.bottom }));
  svg.append(axis);
}

/**
 * Equipment hours per day as bars and the peak workforce as a line (right-hand scale); days with no
 * reading as short grey bars. Absolute figures, because a stall longer than the activity index's
 * baseline window reads as "usual" on the index; the index is on each bar's data and tooltip.
 * @param {Element} container
 * @param {object} activity - the body of /v1/sites/{id}/activity.
 */
export function renderActivityChart(container, activity) {
  container.replaceChildren();
  const items = activity.items;
  const H = 150;
  const seen = items.filter((d) => d.readings > 0);
  const x0 = toDay(items[0].day);
  const x1 = toDay(items[items.length - 1].day) + 1;
  const top = Math.max(1, ...items.map((d) => d.equipment_hours ?? 0)) * 1.15;
  const topPeople = Math.max(1, ...items.map((d) => d.workforce ?? 0)) * 1.15;
  const x = (d) => M.left + ((d - x0) / (x1 - x0)) * (W - M.left - M.right);
  const y = (v) => H - M.bottom - (v / top) * (H - M.top - M.bottom);
  const yPeople = (v) => H - M.bottom - (v / topPeople) * (H - M.top - M.bottom);
  const label =
    `Daily site activity from sensors, ${items[0].day} to ${activity.as_of}: ` +
    `${seen.length} of ${items.length} days with readings; bars equipment hours, line workforce`;
  const svg = el("svg", {
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    "aria-label": label,
    "data-as-of": activity.as_of,
    "data-days": String(items.length),
    "data-days-with-data": String(seen.length),
  });
  svg.append(el("title", {}, label));
  const step = top > 40 ? 20 : top > 12 ? 5 : top > 4 ? 2 : 1;
  const ticks = [];
  for (let v = 0; v <= top; v += step) ticks.push(v);
  axes(svg, { H, x0, x1, x, y, ticks, unit: " h" });
  const bw = Math.max(1, (W - M.left - M.right) / (x1 - x0) - 1);
  const bars = el("g", { class: "bars" });
  for (const d of items) {
    const day = toDay(d.day);
    const hours = d.equipment_hours;
    const h = d.readings === 0 ? 3 : Math.max(hours ? 1 : 0, H - M.bottom - y(hours ?? 0));
    const bar = el("rect", {
      class: d.readings === 0 ? "day gap" : "day",
      x: x(day),
      y: H - M.bottom - h,
      width: bw,
      height: h,
      "data-day": d.day,
      "data-activity-index": fmt(d.activity_index),
      "data-equipment-hours": fmt(hours),
      "data-workforce": fmt(d.workforce),
    });
    const parts = d.readings === 0 ? ["no readings"] : [];
    if (hours !== null) parts.push(`${hours.toFixed(1)} equipment h`);
    if (d.workforce !== null) parts.push(`${d.workforce} workers`);
    if (d.activity_index !== null) parts.push(`activity index ${d.activity_index.toFixed(2)} (1 = usual)`);
    if (d.gaps.length) parts.push(`silent: ${d.gaps.join(", ")}`);
    bar.append(el("title", {}, `${d.day}: ${parts.join(", ")}`));
    bars.append(bar);
  }
  svg.append(bars);
  const people = items.filter((d) => d.workforce !== null);
  if (people.length) {
    const line = people.map((d, i) => `${i ? "L" : "M"}${(x(toDay(d.day)) + bw / 2).toFixed(1)},${yPeople(d.workforce).toFixed(1)}`);
    svg.append(el("path", { class: "workforce", d: line.join(""), "data-series": "workforce" }));
    svg.append(el("text", { class: "workforce-label", x: W - M.right, y: M.top + 8, "text-anchor": "end" }, `workforce (peak ${Math.round(topPeople / 1.15)})`));
  }
  container.append(svg);
  return svg;
}

/**
 * Score over time with the band letter at each point.
 * @param {Element} container
 * @param {Array} history - ``history`` of /v1/loans/{id}/score, oldest first.
 */
export function renderScoreHistory(container, history) {
  container.replaceChildren();
  const H = 130;
  const pts = history.map((h) => ({ ...h, day: toDay(h.scored_at) }));
  const x0 = Math.min(...pts.map((p) => p.day)) - 15;
  const x1 = Math.max(...pts.map((p) => p.day)) + 15;
  const top = Math.ceil((Math.max(...pts.map((p) => p.score)) * 1.15 + 1) / 100) * 100;
  const x = (d) => M.left + ((d - x0) / (x1 - x0)) * (W - M.left - M.right);
  const y = (v) => H - M.bottom - (v / top) * (H - M.top - M.bottom);
  const label = `Score history: ${pts.map((p) => `${p.scored_at.slice(0, 10)} ${p.score} (${p.band})`).join(", ")}`;
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label, "data-scores": String(pts.length) });
  svg.append(el("title", {}, label));
  axes(svg, { H, x0, x1, x, y, ticks: [0, top / 2, top] });
  if (pts.length > 1) {
    svg.append(el("path", { class: "score-line", d: pts.map((p, i) => `${i ? "L" : "M"}${x(p.day).toFixed(1)},${y(p.score).toFixed(1)}`).join("") }));
  }
  for (const p of pts) {
    const g = el("g", { class: "score-point", "data-score": fmt(p.score), "data-band": p.band, "data-scored-at": p.scored_at });
    g.append(el("circle", { cx: x(p.day), cy: y(p.score), r: 3 }));
    g.append(el("text", { class: `band-letter band-${p.band}`, x: x(p.day), y: y(p.score) - 7, "text-anchor": "middle" }, p.band));
    g.append(el("title", {}, `${p.scored_at.slice(0, 16).replace("T", " ")}: score ${p.score}, band ${p.band} (${p.config_version})`));
    svg.append(g);
  }
  container.append(svg);
  return svg;
}
