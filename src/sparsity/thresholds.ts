// Per-(layer, site) thresholds from score histograms: the threshold for sparsity s is the
// s-quantile of the score at that site (|x|, or |x| x column norm when weight-aware), so a
// fraction s of its input elements scores at or below it.
import { ActiveflowError } from "../errors.js";
import { SITES, type SiteHistograms } from "../backend/Backend.js";
import { SELECTIONS, type Selection } from "./selection.js";
import type { LevelQuality } from "./levelQuality.js";

// Fewest tokens a calibration (or record-order count) may run on: below this a level's
// quantile rests on too few samples per layer and site. --tokens and calibrate --text check it.
export const MIN_CALIBRATION_TOKENS = 16;

export const SPARSITY_LEVELS: readonly number[] = [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];

// thresholds[levelIndex] is a Float32Array [nLayer * 4] in site order.
export interface ThresholdTable {
  levels: number[];
  nLayer: number;
  sites: readonly string[];
  thresholds: Float32Array[];
  // Tokens the histograms were gathered over, and where the text came from.
  calibrationTokens: number;
  source: string;
  // How the sparsity of a level is spread over layers and sites: "uniform" (every site at
  // the level), or an allocation (allocate.ts). Absent in tables written before allocation.
  method?: string;
  // siteSparsity[levelIndex][layer * 4 + site]: the fraction of that site's inputs the
  // level's threshold was chosen to drop (the level itself when uniform).
  siteSparsity?: Float32Array[];
  // The score the thresholds were calibrated on: "magnitude" |x_j| (also when absent: tables
  // written before weight-aware selection) or "weight" |x_j| x columnNorms_j.
  selection?: Selection;
  // Weight-aware tables: the model's column norms, [nLayer][4][site width] (columnNorms.ts).
  columnNorms?: Float32Array;
  // KL(dense || sparse) and top-1 agreement each level kept on the calibration text
  // (levelQuality.ts), for the tuner's quality floor. Absent in tables written before it.
  quality?: LevelQuality;
}

export const selectionOf = (t: ThresholdTable): Selection => t.selection ?? "magnitude";

// f32 little-endian as base64: a 7B's norms (745K floats) stay a few MB of JSON, exactly.
function floatsToBase64(a: Float32Array): string {
  const b = Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  return b.toString("base64");
}

function floatsFromBase64(s: string): Float32Array {
  const b = Buffer.from(s, "base64");
  const out = new Float32Array(b.byteLength >> 2);
  for (let i = 0; i < out.length; i++) out[i] = b.readFloatLE(i * 4);
  return out;
}

// Lower edge of histogram bin b (bin 0 starts at 0).
function binEdge(h: SiteHistograms, b: number): number {
  return b <= 0 ? 0 : 2 ** (h.minLog2 + b / h.perOctave);
}

// The s-quantile of one histogram, interpolated log-linearly inside its bin.
export function histogramQuantile(h: SiteHistograms, base: number, s: number): number {
  if (s <= 0) return -1; // keep everything, exact zeros included
  let total = 0;
  for (let b = 0; b < h.bins; b++) total += h.counts[base + b]!;
  if (total === 0) return 0;
  const target = s * total;
  let acc = 0;
  for (let b = 0; b < h.bins; b++) {
    const c = h.counts[base + b]!;
    if (c > 0 && acc + c >= target) {
      const frac = (target - acc) / c;
      if (b === 0) return binEdge(h, 1) * frac;
      const lo = binEdge(h, b), hi = binEdge(h, b + 1);
      return lo * (hi / lo) ** frac;
    }
    acc += c;
  }
  return binEdge(h, h.bins);
}

export function thresholdsFromHistograms(
  h: SiteHistograms,
  nLayer: number,
  levels: readonly number[],
  calibrationTokens: number,
  source: string,
): ThresholdTable {
  if (h.counts.length !== nLayer * SITES.length * h.bins) {
    throw new ActiveflowError("BAD_ARGUMENT", `histograms hold ${h.counts.length} counts, expected ${nLayer * SITES.length * h.bins}`);
  }
  const thresholds = levels.map((s) => {
    const t = new Float32Array(nLayer * SITES.length);
    for (let i = 0; i < t.length; i++) t[i] = histogramQuantile(h, i * h.bins, s);
    return t;
  });
  const siteSparsity = levels.map((s) => new Float32Array(nLayer * SITES.length).fill(s));
  return { levels: [...levels], nLayer, sites: SITES, thresholds, calibrationTokens, source, method: "uniform", siteSparsity };
}

// Thresholds that drop target[i] of each (layer, site)'s inputs, i = layer * 4 + site.
export function thresholdsAt(h: SiteHistograms, target: Float32Array): Float32Array {
  if (h.counts.length !== target.length * h.bins) {
    throw new ActiveflowError("BAD_ARGUMENT", `histograms hold ${h.counts.length} counts, expected ${target.length * h.bins}`);
  }
  const t = new Float32Array(target.length);
  for (let i = 0; i < t.length; i++) t[i] = histogramQuantile(h, i * h.bins, target[i]!);
  return t;
}

// Thresholds for sparsity s: the table's level, or log-linear interpolation between the two
// levels around s (thresholds grow roughly geometrically with s).
export function thresholdsFor(table: ThresholdTable, s: number): Float32Array {
  if (!(s >= 0 && s < 1)) throw new ActiveflowError("BAD_ARGUMENT", `sparsity must be in [0, 1), got ${s}`);
  const { levels, thresholds } = table;
  const exact = levels.indexOf(s);
  if (exact >= 0) return thresholds[exact]!;
  let hi = levels.findIndex((l) => l > s);
  if (hi <= 0) {
    throw new ActiveflowError("BAD_ARGUMENT", `sparsity ${s} is outside the calibrated range ${levels[0]}..${levels[levels.length - 1]}`);
  }
  const lo = hi - 1;
  const f = (s - levels[lo]!) / (levels[hi]! - levels[lo]!);
  const a = thresholds[lo]!, b = thresholds[hi]!;
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) {
    // Level 0's "keep everything" sentinel (-1) interpolates from 0, not from -1.
    const x = Math.max(0, a[i]!), y = b[i]!;
    out[i] = x > 0 && y > 0 ? x * (y / x) ** f : x + (y - x) * f;
  }
  return out;
}

export function tableToJson(t: ThresholdTable): object {
  return {
    version: 1,
    levels: t.levels,
    nLayer: t.nLayer,
    sites: t.sites,
    calibrationTokens: t.calibrationTokens,
    source: t.source,
    thresholds: t.thresholds.map((a) => Array.from(a)),
    ...(t.method !== undefined ? { method: t.method } : {}),
    ...(t.siteSparsity !== undefined ? { siteSparsity: t.siteSparsity.map((a) => Array.from(a)) } : {}),
    ...(t.selection !== undefined ? { selection: t.selection } : {}),
    ...(t.columnNorms !== undefined ? { columnNorms: floatsToBase64(t.columnNorms) } : {}),
    ...(t.quality !== undefined ? { quality: { kl: t.quality.kl, top1: t.quality.top1, tokens: t.quality.tokens } } : {}),
  };
}

// Checks a table's per-level quality (one KL >= 0 and one top-1 in [0, 1] per level); `names`
// are the fields' names in messages (the JSON's, or a flash file's metadata keys).
export function checkQuality(
  kl: unknown,
  top1: unknown,
  tokens: unknown,
  levels: number,
  bad: (m: string) => Error,
  names = { kl: "quality.kl", top1: "quality.top1", tokens: "quality.tokens" },
): LevelQuality {
  const row = (name: string, v: unknown, ok: (x: number) => boolean, what: string): number[] => {
    if (!(Array.isArray(v) || v instanceof Float32Array) || v.length !== levels) throw bad(`${name} must hold ${levels} numbers, one per level`);
    const a = Array.from(v as ArrayLike<unknown>);
    const i = a.findIndex((x) => typeof x !== "number" || !ok(x));
    if (i >= 0) throw bad(`${name}[${i}] must be ${what}, found ${JSON.stringify(a[i])}`);
    return a as number[];
  };
  const n = typeof tokens === "bigint" ? Number(tokens) : tokens;
  if (!(typeof n === "number" && Number.isInteger(n) && n > 0)) throw bad(`${names.tokens} must be a positive integer, found ${typeof tokens === "string" ? JSON.stringify(tokens) : String(tokens)}`);
  return {
    kl: row(names.kl, kl, (x) => Number.isFinite(x) && x >= 0, "a finite number >= 0"),
    top1: row(names.top1, top1, (x) => x >= 0 && x <= 1, "a number in [0, 1]"),
    tokens: n,
  };
}

// Checks a table's selection and norms; returns them as table fields.
export function checkSelection(selection: unknown, norms: Float32Array | undefined, bad: (m: string) => Error): Pick<ThresholdTable, "selection" | "columnNorms"> {
  if (selection === undefined) {
    if (norms !== undefined) throw bad("holds column norms but no selection");
    return {};
  }
  if (!SELECTIONS.includes(selection as Selection)) throw bad(`selection must be one of ${SELECTIONS.join(", ")}, found ${JSON.stringify(selection)}`);
  if (selection === "weight") {
    if (norms === undefined || norms.length === 0) throw bad('selection "weight" needs the column norms, which are missing');
    if (!norms.every((x) => Number.isFinite(x) && x >= 0)) throw bad("column norms must be finite and >= 0");
    return { selection: "weight", columnNorms: norms };
  }
  return { selection: selection as Selection };
}

export function tableFromJson(j: unknown, where: string): ThresholdTable {
  const o = j as Record<string, unknown>;
  const bad = (m: string) => new ActiveflowError("BAD_ARGUMENT", `${where}: ${m}`);
  if (!o || o.version !== 1) throw bad("unknown calibration table version");
  const levels = o.levels, nLayer = o.nLayer, th = o.thresholds;
  if (!Array.isArray(levels) || typeof nLayer !== "number" || !Array.isArray(th) || th.length !== levels.length) {
    throw bad("malformed calibration table");
  }
  const rows = (name: string, list: unknown[]) =>
    list.map((row, i) => {
      if (!Array.isArray(row) || row.length !== nLayer * SITES.length) throw bad(`${name}[${i}] must hold ${nLayer * SITES.length} numbers`);
      return Float32Array.from(row as number[]);
    });
  const thresholds = rows("thresholds", th);
  const ss = o.siteSparsity;
  if (ss !== undefined && (!Array.isArray(ss) || ss.length !== levels.length)) throw bad(`siteSparsity must hold ${levels.length} rows`);
  return {
    levels: levels as number[],
    nLayer,
    sites: SITES,
    thresholds,
    calibrationTokens: Number(o.calibrationTokens ?? 0),
    source: String(o.source ?? ""),
    ...(o.method !== undefined ? { method: String(o.method) } : {}),
    ...(ss !== undefined ? { siteSparsity: rows("siteSparsity", ss as unknown[]) } : {}),
    ...checkSelection(o.selection, readNorms(o.columnNorms, bad), bad),
    ...(o.quality !== undefined ? { quality: readQuality(o.quality, levels.length, bad) } : {}),
  };
}

function readQuality(v: unknown, levels: number, bad: (m: string) => Error): LevelQuality {
  if (typeof v !== "object" || v === null) throw bad("quality must be an object { kl, top1, tokens }");
  const q = v as Record<string, unknown>;
  return checkQuality(q.kl, q.top1, q.tokens, levels, bad);
}

function readNorms(v: unknown, bad: (m: string) => Error): Float32Array | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "string") throw bad("columnNorms must be a base64 string of f32 values");
  return floatsFromBase64(v);
}
