// A small, dependency-free SVG line chart: several series with a legend, axes with "nice" ticks,
// a title, optional log-scaled y and dashed horizontal reference lines (targets).
// Output is a pure function of the input: fixed number formatting, fixed palette, no dates, no
// randomness, so that committed plots and golden files only change when the data does.

export interface Series {
  name: string;
  /** [x, y] pairs, drawn in order; non-finite points (and y <= 0 on a log axis) are dropped. */
  points: [number, number][];
  /** CSS colour; default: the palette colour of `name` (stable across charts), else by position. */
  color?: string;
  /** Also draw a dot at each point (default: when the series has at most 12 points, e.g. per-epoch values). */
  markers?: boolean;
}

export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  logY?: boolean;
  /** Start the x axis here (e.g. 0 for time and epochs) instead of at the smallest x. */
  xMin?: number;
  /** Horizontal reference lines, drawn dashed and labelled at the right end. */
  hlines?: { y: number; label: string }[];
  /** Vertical reference lines (a time budget, say), drawn dashed and labelled at the top. */
  vlines?: { x: number; label: string }[];
  width?: number;
  /** Room right of the plot for the legend (default 120 px; long series names need more). */
  legendWidth?: number;
  height?: number;
}

/** Okabe-Ito colours (readable by colour-blind readers), then grey, brown, dark green and wine (Tol) for a ninth to twelfth series; the optimizers keep theirs in every chart. */
const NAMED: Record<string, string> = { sgd: '#0072B2', adamw: '#E69F00', kfac: '#CC79A7', ngd: '#009E73', fngd: '#D55E00' };
const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#D55E00', '#CC79A7', '#56B4E9', '#F0E442', '#000000', '#999999', '#8C510A', '#117733', '#882255'];

/** Numbers in the SVG: one decimal is sub-pixel and keeps files small and stable. */
const px = (v: number): string => {
  const s = v.toFixed(1);
  return s === '-0.0' ? '0.0' : s;
};

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Drops floating-point dust (0.30000000000000004 -> 0.3), so ticks are the decimals they look like. */
const clean = (v: number): number => Number(v.toPrecision(12));

/** About `count` ticks covering [lo, hi] at 1, 2 or 5 times a power of ten. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw * 0.999)!;
  const ticks: number[] = [];
  // Integer multiples of the step, so that ticks are exact decimals after rounding.
  for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k++) ticks.push(clean(k * step));
  return ticks;
}

/** Log-axis ticks: powers of ten; 1-2-5 multiples up to three decades; linear nice ticks under one. */
export function logTicks(lo: number, hi: number): number[] {
  const decades = Math.log10(hi / lo);
  if (decades < 1) return niceTicks(lo, hi, 6).filter((v) => v > 0);
  const mults = decades <= 3 ? [1, 2, 5] : [1];
  const out: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of mults) {
      const v = clean(m * 10 ** e);
      if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) out.push(v);
    }
  }
  return out;
}

/** A tick label with as many decimals as the tick spacing needs (and no "-0"). */
export function formatTick(v: number, step: number): string {
  if (v === 0) return '0';
  const abs = Math.abs(v);
  if (abs >= 1e5 || abs < 1e-4) return Number(v.toPrecision(3)).toExponential().replace('e+', 'e');
  const decimals = Math.min(6, Math.max(0, -Math.floor(Math.log10(step) + 1e-9)));
  return v.toFixed(decimals);
}

/** Extends a degenerate or unpadded range so the data does not touch the frame. */
function domain(vs: number[], log: boolean): [number, number] {
  let lo = Math.min(...vs);
  let hi = Math.max(...vs);
  if (log) {
    if (lo === hi) return [lo / 2, hi * 2];
    const pad = (hi / lo) ** 0.04;
    return [lo / pad, hi * pad];
  }
  if (lo === hi) {
    const d = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    return [lo - d, hi + d];
  }
  const pad = (hi - lo) * 0.04;
  lo -= pad;
  hi += pad;
  return [lo, hi];
}

export function lineChart(series: Series[], o: ChartOptions): string {
  const W = o.width ?? 640;
  const H = o.height ?? 360;
  const legendW = o.legendWidth ?? 120;
  const m = { left: 64, right: 16 + legendW, top: 36, bottom: 48 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const log = o.logY ?? false;
  const ok = ([x, y]: [number, number]): boolean => Number.isFinite(x) && Number.isFinite(y) && (!log || y > 0);
  const clean = series.map((s) => ({ ...s, points: s.points.filter(ok) }));
  const xs = clean.flatMap((s) => s.points.map((p) => p[0]));
  const ys = clean.flatMap((s) => s.points.map((p) => p[1]));
  for (const h of o.hlines ?? []) if (Number.isFinite(h.y) && (!log || h.y > 0)) ys.push(h.y);

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  out.push(`<text x="${px(m.left + pw / 2)}" y="20" text-anchor="middle" font-size="13" font-weight="bold">${esc(o.title)}</text>`);
  if (xs.length === 0 || ys.length === 0) {
    out.push(`<text x="${px(m.left + pw / 2)}" y="${px(m.top + ph / 2)}" text-anchor="middle" fill="#666">no data</text>`, '</svg>');
    return `${out.join('\n')}\n`;
  }

  for (const v of o.vlines ?? []) if (Number.isFinite(v.x)) xs.push(v.x);
  if (o.xMin !== undefined) xs.push(o.xMin);
  let [x0, x1] = domain(xs, false);
  if (o.xMin !== undefined && o.xMin <= Math.min(...xs)) x0 = o.xMin;
  const [y0, y1] = domain(ys, log);
  const ty = log ? (v: number): number => Math.log10(v) : (v: number): number => v;
  const sx = (v: number): number => m.left + ((v - x0) / (x1 - x0)) * pw;
  const sy = (v: number): number => m.top + ph - ((ty(v) - ty(y0)) / (ty(y1) - ty(y0))) * ph;

  // Grid and tick labels.
  const xt = niceTicks(x0, x1, 6);
  const xStep = xt.length > 1 ? xt[1]! - xt[0]! : 1;
  const yt = log ? logTicks(y0, y1) : niceTicks(y0, y1, 5);
  const yStep = yt.length > 1 ? yt[1]! - yt[0]! : 1;
  out.push('<g stroke="#e5e5e5">');
  for (const v of xt) out.push(`<line x1="${px(sx(v))}" y1="${px(m.top)}" x2="${px(sx(v))}" y2="${px(m.top + ph)}"/>`);
  for (const v of yt) out.push(`<line x1="${px(m.left)}" y1="${px(sy(v))}" x2="${px(m.left + pw)}" y2="${px(sy(v))}"/>`);
  out.push('</g>');
  out.push(`<rect x="${px(m.left)}" y="${px(m.top)}" width="${px(pw)}" height="${px(ph)}" fill="none" stroke="#333"/>`);
  out.push('<g fill="#333">');
  for (const v of xt) out.push(`<text x="${px(sx(v))}" y="${px(m.top + ph + 15)}" text-anchor="middle">${formatTick(v, xStep)}</text>`);
  for (const v of yt) {
    // Evenly spaced ticks share one precision; powers and 1-2-5 multiples need their own.
    const step = log && Math.log10(y1 / y0) >= 1 ? v : yStep;
    out.push(`<text x="${px(m.left - 6)}" y="${px(sy(v) + 4)}" text-anchor="end">${formatTick(v, step)}</text>`);
  }
  out.push('</g>');
  out.push(`<text x="${px(m.left + pw / 2)}" y="${px(H - 10)}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  out.push(`<text transform="translate(14 ${px(m.top + ph / 2)}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}${log ? ' (log)' : ''}</text>`);

  // Reference lines.
  for (const h of o.hlines ?? []) {
    if (!Number.isFinite(h.y) || (log && h.y <= 0) || h.y < y0 || h.y > y1) continue;
    out.push(`<line x1="${px(m.left)}" y1="${px(sy(h.y))}" x2="${px(m.left + pw)}" y2="${px(sy(h.y))}" stroke="#888" stroke-dasharray="5 4"/>`);
    out.push(`<text x="${px(m.left + pw - 4)}" y="${px(sy(h.y) - 4)}" text-anchor="end" fill="#666">${esc(h.label)}</text>`);
  }
  for (const v of o.vlines ?? []) {
    if (!Number.isFinite(v.x)) continue;
    out.push(`<line x1="${px(sx(v.x))}" y1="${px(m.top)}" x2="${px(sx(v.x))}" y2="${px(m.top + ph)}" stroke="#888" stroke-dasharray="5 4"/>`);
    out.push(`<text x="${px(sx(v.x) - 4)}" y="${px(m.top + 12)}" text-anchor="end" fill="#666">${esc(v.label)}</text>`);
  }

  // Series, then the legend (right of the plot, so it never hides data).
  clean.forEach((s, i) => {
    const color = s.color ?? NAMED[s.name] ?? PALETTE[i % PALETTE.length]!;
    if (s.points.length > 1) {
      const d = s.points.map(([x, y], k) => `${k === 0 ? 'M' : 'L'}${px(sx(x))} ${px(sy(y))}`).join('');
      out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2" stroke-linejoin="round"/>`);
    }
    if (s.markers ?? s.points.length <= 12) {
      out.push(`<g fill="${color}">${s.points.map(([x, y]) => `<circle cx="${px(sx(x))}" cy="${px(sy(y))}" r="2.5"/>`).join('')}</g>`);
    }
    const ly = m.top + 8 + i * 18;
    const lx = m.left + pw + 14;
    out.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 18}" y2="${ly}" stroke="${color}" stroke-width="2"/>`);
    out.push(`<text x="${lx + 24}" y="${ly + 4}">${esc(s.name)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/**
 * A metric per epoch and against training time, side by side: what `fngd compare` and the search
 * tables draw. `epoch` counts from 0; `time` is in whatever unit `timeLabel` names.
 */
export function metricCharts(
  metric: string,
  runs: { name: string; epochs: { epoch: number; time: number; value: number }[] }[],
  o: { timeLabel: string } & Pick<ChartOptions, 'hlines' | 'vlines' | 'width' | 'height' | 'legendWidth'>,
): string {
  const { timeLabel, vlines, ...shared } = o;
  const series = (x: (e: { epoch: number; time: number }) => number): Series[] => runs.map((run) => ({
    name: run.name, points: run.epochs.map((e) => [x(e), e.value] as [number, number]),
  }));
  return sideBySide([
    lineChart(series((e) => e.epoch + 1), { title: `${metric} per epoch`, xLabel: 'epoch', yLabel: metric, xMin: 0, ...shared }),
    lineChart(series((e) => e.time), { title: `${metric} against training time`, xLabel: timeLabel, yLabel: metric, xMin: 0, vlines, ...shared }),
  ]);
}

/** Charts from `lineChart` placed in one row of one SVG (nested <svg> elements keep their own coordinates). */
export function sideBySide(charts: string[]): string {
  const size = (svg: string): [number, number] => {
    const m = /width="(\d+)" height="(\d+)"/.exec(svg);
    return m ? [Number(m[1]), Number(m[2])] : [640, 360];
  };
  let x = 0;
  const parts = charts.map((c) => {
    const part = c.trimEnd().replace('<svg xmlns="http://www.w3.org/2000/svg" ', `<svg x="${x}" y="0" `);
    x += size(c)[0];
    return part;
  });
  const h = Math.max(...charts.map((c) => size(c)[1]));
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${x}" height="${h}" viewBox="0 0 ${x} ${h}">\n${parts.join('\n')}\n</svg>\n`;
}
