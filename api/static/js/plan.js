// The planned curve of a site, as aoi.model.Plan.planned_percent computes it (phases or milestones).

const DAY = 86400000;
export const toDay = (iso) => Math.floor(Date.parse(`${iso.slice(0, 10)}T00:00:00Z`) / DAY);
export const fromDay = (day) => new Date(day * DAY).toISOString().slice(0, 10);

function phaseFraction(phase, day) {
  const start = toDay(phase.start);
  const end = toDay(phase.end);
  if (day < start) return 0;
  if (day >= end) return 1;
  return (day - start + 1) / (end - start + 1);
}

/** Planned percent (0-100) at the end of ``day`` (days since 1970-01-01). */
export function plannedPercent(plan, day) {
  const start = Math.min(...plan.phases.map((p) => toDay(p.start)));
  if (plan.milestones && plan.milestones.length) {
    const pts = [[start - 1, 0], ...plan.milestones.map((m) => [toDay(m.date), m.percent])];
    if (day <= pts[0][0]) return 0;
    for (let i = 1; i < pts.length; i++) {
      const [x0, y0] = pts[i - 1];
      const [x1, y1] = pts[i];
      if (day <= x1) return x1 === x0 ? y0 : y0 + ((y1 - y0) * (day - x0)) / (x1 - x0);
    }
    return pts[pts.length - 1][1];
  }
  const total = plan.phases.reduce((s, p) => s + p.weight, 0) || 1;
  return (100 * plan.phases.reduce((s, p) => s + p.weight * phaseFraction(p, day), 0)) / total;
}

/** The planned curve as [day, percent] at every break point (it is linear in between). */
export function plannedCurve(plan) {
  const days = new Set();
  for (const p of plan.phases) {
    days.add(toDay(p.start) - 1);
    days.add(toDay(p.start));
    days.add(toDay(p.end));
  }
  for (const m of plan.milestones || []) days.add(toDay(m.date));
  return [...days].sort((a, b) => a - b).map((d) => [d, plannedPercent(plan, d)]);
}
