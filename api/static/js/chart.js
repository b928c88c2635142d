// Progress against plan as plain SVG: observed curve with its confidence band, the planned curve,
// and the forecast. Values are also on data-* attributes so tests and scripts can read them.

import { fromDay, plannedCurve, toDay } from "./plan.js";
import { el, fmt } from "./svg.js";

const W = 560;
const H = 270;
const M = { left: 40, right: 14, top: 14, bottom: 44 };

/**
 * Draw the chart into ``container``.
 * @param {object} args - plan (site plan), summary and series (from /v1/sites/{id}/progress).
 */
export function renderProgressChart(container, { plan, summary, series }) {
  container.replaceChildren();
  const planned = plannedCurve(plan);
  const pts = series.map((p) => ({ ...p, day: toDay(p.on) }));
  const forecastDays = [summary.forecast_completion, summary.forecast_early, summary.forecast_late]
    .filter(Boolean)
    .map(toDay);
  const asOf = toDay(summary.as_of);
  const days = [...planned.map((p) => p[0]), ...pts.map((p) => p.day), ...forecastDays, asOf];
  const x0 = Math.min(...days);
  const x1 = Math.max(...days) + 1;
  const x = (d) => M.left + ((d - x0) / (x1 - x0)) * (W - M.left - M.right);
  const y = (v) => H - M.bottom - (v / 100) * (H - M.top - M.bottom);
  const path = (xy) => xy.map(([d, v], i) => `${i ? "L" : "M"}${x(d).toFixed(1)},${y(v).toFixed(1)}`).join("");

  const label =
    `Progress of ${summary.site_id} on ${summary.as_of}: observed ${fmt(summary.observed_pct)}% ` +
    `(${fmt(summary.lower_pct)} to ${fmt(summary.upper_pct)}), planned ${fmt(summary.planned_pct)}%` +
    (summary.slip_days !== null ? `, ${summary.slip_days} days behind plan` : "") +
    (summary.forecast_completion ? `, forecast completion ${summary.forecast_completion}` : "") +
    (summary.stalled ? ", stalled" : "");
  const svg = el("svg", {
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    "aria-label": label,
    "data-as-of": summary.as_of,
    "data-observed-pct": fmt(summary.observed_pct),
    "data-lower-pct": fmt(summary.lower_pct),
    "data-upper-pct": fmt(summary.upper_pct),
    "data-planned-pct": fmt(summary.planned_pct),
    "data-slip-days": fmt(summary.slip_days),
    "data-stalled": String(Boolean(summary.stalled)),
    "data-forecast-completion": fmt(summary.forecast_completion),
    "data-points": String(pts.length),
  });
  svg.append(el("title", {}, label));

  // axes and grid
  const axis = el("g", { class: "axis" });
  for (const v of [0, 25, 50, 75, 100]) {
    axis.append(el("line", { class: "grid", x1: M.left, x2: W - M.right, y1: y(v), y2: y(v) }));
    axis.append(el("text", { x: M.left - 4, y: y(v) + 4, "text-anchor": "end" }, `${v}%`));
  }
  const firstYear = new Date(x0 * 86400000).getUTCFullYear();
  const lastYear = new Date(x1 * 86400000).getUTCFullYear();
  for (let yr = firstYear; yr <= lastYear + 1; yr++) {
    for (const month of yr === firstYear && yr === lastYear ? [1, 4, 7, 10] : [1, 7]) {
      const d = toDay(`${yr}-${String(month).padStart(2, "0")}-01`);
      if (d < x0 || d > x1) continue;
      axis.append(el("line", { x1: x(d), x2: x(d), y1: H - M.bottom, y2: H - M.bottom + 4 }));
      axis.append(el("text", { x: x(d), y: H - M.bottom + 15, "text-anchor": "middle" }, fromDay(d).slice(0, 7)));
    }
  }
  axis.append(el("line", { x1: M.left, x2: W - M.right, y1: H - M.bottom, y2: H - M.bottom }));
  svg.append(axis);

  // forecast range, planned curve, confidence band, observed curve
  if (summary.forecast_early && summary.forecast_late) {
    const a = x(toDay(summary.forecast_early));
    const b = x(toDay(summary.forecast_late));
    svg.append(el("rect", { class: "forecast-range", x: a, y: M.top, width: Math.max(b - a, 1), height: H - M.top - M.bottom }));
  }
  svg.append(el("path", { class: "planned", d: path(planned), "data-series": "planned" }));
  const withBand = pts.filter((p) => p.lower_pct !== null && p.upper_pct !== null);
  if (withBand.length) {
    const upper = withBand.map((p) => [p.day, p.upper_pct]);
    const lower = withBand.map((p) => [p.day, p.lower_pct]).reverse();
    svg.append(el("path", { class: "band", d: `${path([...upper, ...lower])}Z`, "data-series": "confidence" }));
  }
  const observed = pts.filter((p) => p.observed_pct !== null);
  if (observed.length) {
    svg.append(el("path", { class: "observed", d: path(observed.map((p) => [p.day, p.observed_pct])), "data-series": "observed" }));
  }
  const dots = el("g", { class: "points" });
  for (const p of observed) {
    const dot = el("circle", {
      class: "point",
      cx: x(p.day),
      cy: y(p.observed_pct),
      r: 2.5,
      "data-on": p.on,
      "data-observed-pct": fmt(p.observed_pct),
      "data-lower-pct": fmt(p.lower_pct),
      "data-upper-pct": fmt(p.upper_pct),
      "data-planned-pct": fmt(p.planned_pct),
    });
    dot.append(el("title", {}, `${p.on}: ${p.observed_pct}% (${fmt(p.lower_pct)}–${fmt(p.upper_pct)}), plan ${p.planned_pct}%`));
    dots.append(dot);
  }
  svg.append(dots);

  // as-of line, then the forecast from today's observed value to 100 %
  svg.append(el("line", { class: "asof", x1: x(asOf), x2: x(asOf), y1: M.top, y2: H - M.bottom }));
  const nearRight = x(asOf) > W - M.right - 90;
  svg.append(el("text", { x: x(asOf) + (nearRight ? -3 : 3), y: M.top + 10, "text-anchor": nearRight ? "end" : "start" }, `as of ${summary.as_of}`));
  if (summary.forecast_completion && summary.observed_pct !== null) {
    const f = toDay(summary.forecast_completion);
    svg.append(el("path", { class: "forecast", d: path([[asOf, summary.observed_pct], [f, 100]]), "data-series": "forecast" }));
    svg.append(el("text", { x: x(f), y: y(100) - 3, "text-anchor": "end" }, `forecast ${summary.forecast_completion}`));
  } else if (summary.stalled) {
    svg.append(el("text", { class: "stalled", x: x(asOf) - 4, y: y(summary.observed_pct ?? 0) - 8, "text-anchor": "end" }, "stalled: no forecast"));
  }

  // legend
  const legend = el("g", { transform: `translate(${M.left},${H - 12})` });
  const items = [["observed", "observed"], ["band", "confidence band"], ["planned", "planned"], ["forecast", "forecast"]];
  items.forEach(([cls, text], i) => {
    const gx = i * 125;
    if (cls === "band") legend.append(el("rect", { class: "band", x: gx, y: -8, width: 18, height: 10 }));
    else legend.append(el("path", { class: cls, d: `M${gx},-3h18` }));
    legend.append(el("text", { x: gx + 22, y: 1 }, text));
  });
  svg.append(legend);
  container.append(svg);
  return svg;
}
