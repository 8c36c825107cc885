// Spreading a sparsity level over layers and sites (after TEAL's greedy allocation): each
// (layer, site) gets its own fraction of inputs to drop so that the predicted damage is least
// while the byte-weighted mean stays at the level, i.e. "sparsity 0.5" still skips half of the
// linear weight bytes. Damage model: dropping the inputs below |x| <= t at a site perturbs its
// output by about the energy E(s) = sum_{|x|<=t} x^2 / sum x^2 it removes, and the KL to the
// dense model grows with that perturbation's square norm, so KL_site(s) ~ c_site * E_site(s);
// c_site is measured once per site by a probe (that site alone at PROBE_SPARSITY), and the
// sites' KLs are taken to add up.
import type { SiteHistograms } from "../backend/Backend.js";
import { SITES } from "../backend/Backend.js";
import type { SparsityTarget } from "./target.js";
import { logSoftmax } from "../eval/quality.js";
import { SITE_TENSORS } from "../flash/format.js";
import { readGguf } from "../gguf/reader.js";
import { splitFusedTensors } from "../model/fusedTensors.js";
import { histogramQuantile, thresholdsAt } from "./thresholds.js";

export const PROBE_SPARSITY = 0.5;
// Tokens of calibration text each probe is scored on (whole windows, at least this many).
export const PROBE_TOKENS = 512;
// Greedy step and the most any one site may drop.
const STEP = 0.025;
const MAX_SITE_SPARSITY = 0.95;

// Bytes of linear weights each (layer, site) skips per unit of sparsity: [nLayer * 4].
export async function siteWeightBytes(engine: SparsityTarget): Promise<Float64Array> {
  const n = engine.config.nLayer;
  const out = new Float64Array(n * SITES.length);
  if (engine.flash) {
    for (const e of engine.flash.extents) {
      const s = SITES.indexOf(e.site);
      for (const p of e.parts) out[p.layer * SITES.length + s]! += p.bytes * e.nIn;
    }
    return out;
  }
  const file = splitFusedTensors(await readGguf(engine.path));
  const bytes = new Map(file.tensors.map((t) => [t.name, t.bytes]));
  for (let l = 0; l < n; l++) {
    SITES.forEach((site, s) => {
      for (const t of SITE_TENSORS[site]) out[l * SITES.length + s]! += bytes.get(`blk.${l}.${t}.weight`) ?? 0;
    });
  }
  return out;
}

export interface Sensitivity {
  probe: number;
  // KL(dense || sparse) per token on the probe text with only that (layer, site) sparse.
  kl: Float64Array;
  tokens: number;
}

// Scores each (layer, site) alone at the probe sparsity against the dense model.
export async function probeSensitivity(
  engine: SparsityTarget,
  windows: readonly number[][],
  dense: SiteHistograms,
  options: {
    probe?: number; tokens?: number; signal?: AbortSignal; onProgress?: (fraction: number) => void;
    // Resume: the KLs of the first `done` sites, measured before; onSite sees each new one.
    start?: { kl: readonly number[]; done: number };
    onSite?: (kl: Float64Array, done: number, tokens: number) => Promise<void>;
  } = {},
): Promise<Sensitivity> {
  const probe = options.probe ?? PROBE_SPARSITY;
  const want = options.tokens ?? PROBE_TOKENS;
  const text: number[][] = [];
  let tokens = 0;
  for (const w of windows) {
    if (tokens >= want) break;
    text.push(w);
    tokens += w.length;
  }
  // Dense next-token distributions, as probabilities and log-probabilities (f32 to halve the memory).
  engine.setThresholds(null);
  const ref: { p: Float32Array; lp: Float32Array }[] = [];
  for (const w of text) {
    for (const l of await engine.evaluateLogits(w, options.signal)) {
      const lp = Float32Array.from(logSoftmax(l));
      ref.push({ lp, p: lp.map(Math.exp) });
    }
  }
  const sites = engine.config.nLayer * SITES.length;
  const full = thresholdsAt(dense, new Float32Array(sites).fill(probe));
  const kl = new Float64Array(sites);
  const first = options.start?.done ?? 0;
  for (let i = 0; i < first; i++) kl[i] = options.start!.kl[i]!;
  try {
    for (let i = first; i < sites; i++) {
      const only = new Float32Array(sites).fill(-1);
      only[i] = full[i]!;
      engine.setThresholds(only);
      let k = 0, at = 0;
      for (const w of text) {
        for (const l of await engine.evaluateLogits(w, options.signal)) {
          const sp = logSoftmax(l);
          const { p, lp } = ref[at++]!;
          for (let v = 0; v < p.length; v++) if (p[v]! > 0) k += p[v]! * (lp[v]! - sp[v]!);
        }
      }
      kl[i] = k / ref.length;
      await options.onSite?.(kl, i + 1, ref.length);
      options.onProgress?.((i + 1) / sites);
    }
  } finally {
    engine.setThresholds(null);
  }
  return { probe, kl, tokens: ref.length };
}

// E(s) on the grid s = 0, STEP, ..., for one (layer, site): the fraction of the input's energy
// (sum of x^2) at or below the s-quantile, from its histogram.
function energyCurve(h: SiteHistograms, base: number, grid: readonly number[]): Float64Array {
  const edge = (b: number) => (b <= 0 ? 0 : 2 ** (h.minLog2 + b / h.perOctave));
  let total = 0;
  const below = new Float64Array(h.bins + 1); // energy in bins < b
  for (let b = 0; b < h.bins; b++) {
    const mid = b === 0 ? edge(1) / 2 : Math.sqrt(edge(b) * edge(b + 1));
    below[b + 1] = below[b]! + h.counts[base + b]! * mid * mid;
  }
  total = below[h.bins]!;
  return Float64Array.from(grid, (s) => {
    if (s <= 0 || total === 0) return 0;
    const t = histogramQuantile(h, base, s);
    // Energy of whole bins below t, plus the covered part of t's bin (by count, x ~ t).
    const b = Math.min(h.bins - 1, t <= edge(1) ? 0 : Math.floor(Math.log2(t) * h.perOctave - h.minLog2 * h.perOctave));
    let cnt = 0;
    for (let i = 0; i < b; i++) cnt += h.counts[base + i]!;
    let all = 0;
    for (let i = 0; i < h.bins; i++) all += h.counts[base + i]!;
    const inBin = Math.max(0, s * all - cnt);
    return Math.min(1, (below[b]! + inBin * t * t) / total);
  });
}

// Per level, the fraction of inputs each (layer, site) drops: [levels][nLayer * 4]. Starts
// dense and raises, one STEP at a time, the site whose predicted KL grows least per byte
// skipped, recording the allocation as the byte-weighted mean passes each level.
export function allocateGreedy(
  dense: SiteHistograms,
  sens: Sensitivity,
  bytes: Float64Array,
  levels: readonly number[],
): Float32Array[] {
  const n = bytes.length;
  const grid: number[] = [];
  for (let k = 0; k * STEP <= MAX_SITE_SPARSITY + 1e-9; k++) grid.push(Number((k * STEP).toFixed(6)));
  const pi = grid.indexOf(sens.probe) >= 0 ? grid.indexOf(sens.probe) : Math.round(sens.probe / STEP);
  const cost: Float64Array[] = [];
  for (let i = 0; i < n; i++) {
    const e = energyCurve(dense, i * dense.bins, grid);
    const c = Math.max(sens.kl[i]!, 1e-9) / Math.max(e[pi]!, 1e-12);
    cost.push(e.map((x) => c * x));
  }
  const total = bytes.reduce((a, b) => a + b, 0);
  const step = new Int32Array(n); // grid index of each site
  const out: Float32Array[] = levels.map(() => new Float32Array(n));
  let skipped = 0; // bytes * sparsity, summed
  let li = 0;
  const record = () => {
    while (li < levels.length && skipped / total >= levels[li]! - 1e-9) {
      out[li] = Float32Array.from(step, (k) => grid[k]!);
      li++;
    }
  };
  record();
  while (li < levels.length) {
    let best = -1, bestRate = Infinity;
    for (let i = 0; i < n; i++) {
      const k = step[i]!;
      if (k + 1 >= grid.length || bytes[i]! === 0) continue;
      const rate = (cost[i]![k + 1]! - cost[i]![k]!) / (bytes[i]! * STEP);
      if (rate < bestRate) {
        bestRate = rate;
        best = i;
      }
    }
    if (best < 0) {
      // Every site at MAX_SITE_SPARSITY: higher levels get that.
      for (; li < levels.length; li++) out[li] = Float32Array.from(step, (k) => grid[k]!);
      break;
    }
    step[best]!++;
    skipped += bytes[best]! * STEP;
    record();
  }
  return out;
}

// Byte-weighted mean of a per-site allocation (what "sparsity" means for a level).
export function meanSparsity(alloc: Float32Array, bytes: Float64Array): number {
  let a = 0, w = 0;
  for (let i = 0; i < alloc.length; i++) {
    a += alloc[i]! * bytes[i]!;
    w += bytes[i]!;
  }
  return a / w;
}
