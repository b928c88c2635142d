// SVG building helpers shared by the site view's charts.

export const NS = "http://www.w3.org/2000/svg";

/** An SVG element with the given attributes (null/undefined ones skipped) and optional text. */
export function el(name, attrs = {}, text) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A value as attribute text: empty for null/undefined. */
export const fmt = (v) => (v === null || v === undefined ? "" : String(v));
