// Hand-written SVG charts. Each is an <svg role="img"> with an aria-label; the numbers themselves are also in a
// table next to it, which is what assistive technology and tests read.
const NS = "http://www.w3.org/2000/svg";
export const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
  "#bcbd22", "#17becf"];

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, v);
  for (const c of children) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : String(c));
  return el;
}

const tip = (text) => s("title", {}, text);

/** Horizontal bars: items [{label, value, text}] (text: the formatted value), largest first as given. */
export function bars(label, items, { width = 560 } = {}) {
  const row = 26, left = 190, right = 90;
  const max = Math.max(...items.map((i) => i.value), 1e-12);
  const svg = s("svg", { viewBox: `0 0 ${width} ${items.length * row + 4}`, width, height: items.length * row + 4,
    role: "img", "aria-label": label, class: "chart" });
  items.forEach((item, n) => {
    const y = n * row + 2, w = Math.max(1, ((width - left - right) * item.value) / max);
    svg.append(s("text", { x: left - 8, y: y + 17, "text-anchor": "end", class: "axis" }, clip(item.label, 28)),
      s("rect", { x: left, y: y + 4, width: w, height: row - 8, rx: 3, fill: PALETTE[n % PALETTE.length] },
        tip(`${item.label}: ${item.text}`)),
      s("text", { x: left + w + 6, y: y + 17, class: "value" }, item.text));
  });
  return svg;
}

/** A donut of shares: items [{label, value, text}]; the legend is the caller's table. */
export function donut(label, items, { size = 200 } = {}) {
  const total = items.reduce((a, i) => a + i.value, 0);
  const r = size / 2 - 4, inner = r * 0.58, c = size / 2;
  const svg = s("svg", { viewBox: `0 0 ${size} ${size}`, width: size, height: size, role: "img", "aria-label": label, class: "chart donut" });
  if (total <= 0) {
    svg.append(s("circle", { cx: c, cy: c, r, fill: "#ddd" }));
    return svg;
  }
  let angle = -Math.PI / 2;
  items.forEach((item, n) => {
    const share = item.value / total;
    const next = angle + share * 2 * Math.PI;
    const color = PALETTE[n % PALETTE.length];
    const body = share >= 0.9999
      ? s("circle", { cx: c, cy: c, r: (r + inner) / 2, fill: "none", stroke: color, "stroke-width": r - inner })
      : s("path", { d: arc(c, r, inner, angle, next), fill: color });
    body.append(tip(`${item.label}: ${item.text}`));
    svg.append(body);
    angle = next;
  });
  return svg;
}

function arc(c, r, inner, a0, a1) {
  const large = a1 - a0 > Math.PI ? 1 : 0;
  const p = (rad, a) => `${(c + rad * Math.cos(a)).toFixed(2)} ${(c + rad * Math.sin(a)).toFixed(2)}`;
  return `M ${p(r, a0)} A ${r} ${r} 0 ${large} 1 ${p(r, a1)} L ${p(inner, a1)} A ${inner} ${inner} 0 ${large} 0 ${p(inner, a0)} Z`;
}

/** Lines over time: xs (Date[]), series [{label, values (number|null)[]}], format(v) for the axis. */
export function lines(label, xs, series, format, { width = 900, height = 240 } = {}) {
  const left = 64, bottom = 24, top = 10, right = 12;
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": label,
    class: "chart" });
  const all = series.flatMap((x) => x.values).filter((v) => v !== null && v !== undefined);
  const max = Math.max(...all, 1e-9);
  const t0 = xs.length ? xs[0].getTime() : 0, t1 = xs.length ? xs[xs.length - 1].getTime() : 1;
  const X = (t) => left + ((width - left - right) * (t - t0)) / Math.max(t1 - t0, 1);
  const Y = (v) => top + (height - top - bottom) * (1 - v / max);
  for (let k = 0; k <= 4; k += 1) {
    const v = (max * k) / 4;
    svg.append(s("line", { x1: left, x2: width - right, y1: Y(v), y2: Y(v), class: "grid" }),
      s("text", { x: left - 6, y: Y(v) + 4, "text-anchor": "end", class: "axis" }, format(v)));
  }
  const ticks = Math.min(xs.length, 7);
  for (let k = 0; k < ticks; k += 1) {
    const i = Math.round((k * (xs.length - 1)) / Math.max(ticks - 1, 1));
    svg.append(s("text", { x: X(xs[i].getTime()), y: height - 6, "text-anchor": "middle", class: "axis" },
      xs[i].toISOString().slice(5, xs.length > 48 || t1 - t0 > 2 * 86400e3 ? 10 : 16).replace("T", " ")));
  }
  series.forEach((line, n) => {
    const color = PALETTE[n % PALETTE.length];
    const points = line.values.map((v, i) => (v === null || v === undefined ? null : [X(xs[i].getTime()), Y(v)]));
    const d = points.reduce((acc, p, i) => (p ? `${acc}${acc && points[i - 1] ? "L" : "M"}${p[0].toFixed(1)},${p[1].toFixed(1)} ` : acc), "");
    svg.append(s("path", { d, fill: "none", stroke: color, "stroke-width": 2 }));
    points.forEach((p, i) => p && svg.append(s("circle", { cx: p[0], cy: p[1], r: 3, fill: color },
      tip(`${line.label} ${xs[i].toISOString().slice(0, 16).replace("T", " ")}: ${format(line.values[i])}`))));
  });
  return svg;
}

/** A legend of coloured swatches (an SVG square each: no inline style under the page's CSP). */
export function legend(labels) {
  const ul = document.createElement("ul");
  ul.className = "legend";
  labels.forEach((text, n) => {
    const li = document.createElement("li");
    li.append(s("svg", { width: 12, height: 12, "aria-hidden": "true" },
      s("rect", { width: 12, height: 12, rx: 2, fill: PALETTE[n % PALETTE.length] })), ` ${text}`);
    ul.append(li);
  });
  return ul;
}

const clip = (text, n) => (text.length > n ? `${text.slice(0, n - 1)}…` : text);
