/**
 * Minimal inline SVG charts (line and bar) for self-contained HTML reports:
 * no scripts, no external resources.
 *
 * @module
 */

/** Colors cycled through series. */
export const PALETTE = [
  "#2563eb",
  "#dc2626",
  "#16a34a",
  "#d97706",
  "#7c3aed",
  "#0891b2",
  "#db2777",
];

/** Escapes text for HTML and SVG. */
export function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) =>
      ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[
        c
      ]!,
  );
}

/** One line of a line chart. */
export interface Series {
  name: string;
  points: readonly (readonly [number, number])[];
  /** Draw dashed (e.g. a secondary quantity). */
  dashed?: boolean;
}

/** Options of {@linkcode lineChart}. */
export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: readonly Series[];
  width?: number;
  height?: number;
  /** Logarithmic x axis (values must be > 0). */
  xLog?: boolean;
}

const MARGIN = { left: 64, right: 16, top: 32, bottom: 44 };

function niceStep(span: number, ticks: number): number {
  const raw = span / Math.max(1, ticks);
  const mag = 10 ** Math.floor(Math.log10(raw || 1));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * mag >= raw) return m * mag;
  return 10 * mag;
}

function fmt(v: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 10_000) return `${(v / 1000).toFixed(0)}k`;
  if (a >= 100) return v.toFixed(0);
  if (a >= 1) return Number(v.toFixed(1)).toString();
  return Number(v.toPrecision(2)).toString();
}

function frame(
  opts: { title: string; xLabel: string; yLabel: string; w: number; h: number },
): string {
  const { title, xLabel, yLabel, w, h } = opts;
  return `<text x="${w / 2}" y="18" text-anchor="middle" class="title">${
    escapeHtml(title)
  }</text>` +
    `<text x="${w / 2}" y="${h - 6}" text-anchor="middle" class="label">${
      escapeHtml(xLabel)
    }</text>` +
    `<text x="14" y="${h / 2}" text-anchor="middle" class="label" transform="rotate(-90 14 ${
      h / 2
    })">${escapeHtml(yLabel)}</text>`;
}

/**
 * A line chart as an SVG string.
 *
 * @example
 * ```ts
 * import { lineChart } from "./svg.ts";
 * const svg = lineChart({
 *   title: "req/s",
 *   xLabel: "s",
 *   yLabel: "req/s",
 *   series: [{ name: "run", points: [[0, 1], [1, 3]] }],
 * });
 * ```
 */
export function lineChart(opts: LineChartOptions): string {
  const w = opts.width ?? 720;
  const h = opts.height ?? 300;
  const pw = w - MARGIN.left - MARGIN.right;
  const ph = h - MARGIN.top - MARGIN.bottom;
  const all = opts.series.flatMap((s) => s.points);
  const tx = (x: number) => (opts.xLog ? Math.log10(Math.max(x, 1e-9)) : x);
  const xs = all.map(([x]) => tx(x));
  const ys = all.map(([, y]) => y);
  let xMin = xs.length ? Math.min(...xs) : 0;
  let xMax = xs.length ? Math.max(...xs) : 1;
  if (xMax === xMin) xMax = xMin + 1;
  if (!opts.xLog) xMin = Math.min(0, xMin);
  const yMax0 = ys.length ? Math.max(...ys) : 1;
  const yStep = niceStep(yMax0 || 1, 5);
  const yMax = Math.max(yStep, Math.ceil((yMax0 || 1) / yStep) * yStep);
  const px = (x: number) => MARGIN.left + ((tx(x) - xMin) / (xMax - xMin)) * pw;
  const py = (y: number) => MARGIN.top + ph - (y / yMax) * ph;
  const parts: string[] = [];
  for (let y = 0; y <= yMax + 1e-9; y += yStep) {
    parts.push(
      `<line x1="${MARGIN.left}" x2="${MARGIN.left + pw}" y1="${py(y)}" y2="${
        py(y)
      }" class="grid"/>` +
        `<text x="${MARGIN.left - 6}" y="${py(y) + 4}" text-anchor="end" class="tick">${
          fmt(y)
        }</text>`,
    );
  }
  if (opts.xLog) {
    for (let e = Math.floor(xMin); e <= Math.ceil(xMax); e++) {
      if (e < xMin || e > xMax) continue;
      const x = MARGIN.left + ((e - xMin) / (xMax - xMin)) * pw;
      parts.push(
        `<line x1="${x}" x2="${x}" y1="${MARGIN.top}" y2="${MARGIN.top + ph}" class="grid"/>` +
          `<text x="${x}" y="${MARGIN.top + ph + 16}" text-anchor="middle" class="tick">${
            fmt(10 ** e)
          }</text>`,
      );
    }
  } else {
    const xStep = niceStep(xMax - xMin, 8);
    for (
      let x = Math.ceil(xMin / xStep) * xStep;
      x <= xMax + 1e-9;
      x += xStep
    ) {
      parts.push(
        `<text x="${px(x)}" y="${MARGIN.top + ph + 16}" text-anchor="middle" class="tick">${
          fmt(x)
        }</text>`,
      );
    }
  }
  opts.series.forEach((s, i) => {
    if (s.points.length === 0) return;
    const d = s.points.map(([x, y], j) =>
      `${j === 0 ? "M" : "L"}${px(x).toFixed(1)},${py(y).toFixed(1)}`
    )
      .join("");
    const color = PALETTE[i % PALETTE.length];
    parts.push(
      `<path d="${d}" fill="none" stroke="${color}" stroke-width="1.8"${
        s.dashed ? ' stroke-dasharray="5 4"' : ""
      }><title>${escapeHtml(s.name)}</title></path>`,
    );
    const lx = MARGIN.left + 8 + (i % 4) * 150;
    const ly = MARGIN.top + 12 + Math.floor(i / 4) * 14;
    parts.push(
      `<rect x="${lx}" y="${ly - 8}" width="10" height="10" fill="${color}"/>` +
        `<text x="${lx + 14}" y="${ly + 1}" class="legend">${escapeHtml(s.name)}</text>`,
    );
  });
  parts.push(
    `<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${pw}" height="${ph}" class="plot"/>`,
  );
  return svgDocument(w, h, frame({ ...opts, w, h }) + parts.join(""));
}

/** Options of {@linkcode barChart}. */
export interface BarChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  bars: readonly { label: string; value: number }[];
  width?: number;
  height?: number;
}

/** A bar chart as an SVG string (labels under every few bars). */
export function barChart(opts: BarChartOptions): string {
  const w = opts.width ?? 720;
  const h = opts.height ?? 300;
  const pw = w - MARGIN.left - MARGIN.right;
  const ph = h - MARGIN.top - MARGIN.bottom;
  const maxV = Math.max(1e-9, ...opts.bars.map((b) => b.value));
  const step = niceStep(maxV, 5);
  const yMax = Math.max(step, Math.ceil(maxV / step) * step);
  const py = (y: number) => MARGIN.top + ph - (y / yMax) * ph;
  const bw = pw / Math.max(1, opts.bars.length);
  const labelEvery = Math.max(1, Math.ceil(opts.bars.length / 10));
  const parts: string[] = [];
  for (let y = 0; y <= yMax + 1e-9; y += step) {
    parts.push(
      `<line x1="${MARGIN.left}" x2="${MARGIN.left + pw}" y1="${py(y)}" y2="${
        py(y)
      }" class="grid"/>` +
        `<text x="${MARGIN.left - 6}" y="${py(y) + 4}" text-anchor="end" class="tick">${
          fmt(y)
        }</text>`,
    );
  }
  opts.bars.forEach((b, i) => {
    const x = MARGIN.left + i * bw;
    parts.push(
      `<rect x="${(x + 1).toFixed(1)}" y="${py(b.value).toFixed(1)}" width="${
        Math.max(1, bw - 2).toFixed(1)
      }" height="${(MARGIN.top + ph - py(b.value)).toFixed(1)}" fill="${PALETTE[0]}"><title>${
        escapeHtml(`${b.label}: ${fmt(b.value)}`)
      }</title></rect>`,
    );
    if (i % labelEvery === 0) {
      parts.push(
        `<text x="${x + bw / 2}" y="${MARGIN.top + ph + 16}" text-anchor="middle" class="tick">${
          escapeHtml(b.label)
        }</text>`,
      );
    }
  });
  parts.push(
    `<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${pw}" height="${ph}" class="plot"/>`,
  );
  return svgDocument(w, h, frame({ ...opts, w, h }) + parts.join(""));
}

function svgDocument(w: number, h: number, body: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${w} ${h}" width="${w}" height="${h}" role="img">${body}</svg>`;
}
