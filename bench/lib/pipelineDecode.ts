// Decode-only numbers of one pipeline run: the backend's counters at the last token minus
// those at the first, per decode token.
import type { BackendFlashStats } from "../../src/backend/Backend.js";
import { SITES } from "../../src/backend/Backend.js";
import type { Done } from "./pipelineRun.js";

export interface PredictionCounts { tp: number; fp: number; fn: number; distance?: number }

// The addon's count arrays: 4 entries are distances 1..4; 5 entries start with the half-layer
// (previous sub-block) prediction, then 1..4.
const distanceOf = (i: number, length: number) => (length === 5 ? (i === 0 ? 0.5 : i) : i + 1);

export interface DecodeNumbers {
  tokens: number;
  seconds: number;
  tokensPerSecond: number;
  flashBytesPerToken: number;
  readsPerToken: number;
  meanReadBytes: number;
  // Record bytes of the active channels the compute used, wherever they came from.
  activeBytesPerToken: number;
  preloadBytesPerToken: number;
  demandBytesPerToken: number;
  cacheHitRate: number;
  activeFromCache: number;
  activeFromPreload: number;
  activeOnDemand: number;
  ioWaitSecondsPerToken: number;
  computeSecondsPerToken: number;
  preloadIoSecondsPerToken: number;
  preloadWaitSecondsPerToken: number;
  demandWaitSecondsPerToken: number;
  overlap: number;
  // [site] -> [distance - 1] counts over the decode tokens.
  prediction: Record<string, PredictionCounts[]>;
  // The same split by the predicted layer: 0-2 and 3 on (when the addon reports per-layer counts).
  predictionLayers0to2?: Record<string, PredictionCounts[]>;
  predictionFromLayer3?: Record<string, PredictionCounts[]>;
}

// Sums the flat per-layer counts [nLayer][site][distance 0..4][tp, fp, fn] of layers [l0, l1).
function layerCounts(a: ArrayLike<number> | undefined, b: ArrayLike<number>, l0: number, l1: number): Record<string, PredictionCounts[]> {
  const out: Record<string, PredictionCounts[]> = {};
  const nLayer = b.length / (SITES.length * 5 * 3);
  SITES.forEach((site, s) => {
    out[site] = [0, 1, 2, 3, 4].map((d) => {
      const c = { tp: 0, fp: 0, fn: 0, distance: distanceOf(d, 5) };
      for (let l = l0; l < Math.min(l1, nLayer); l++) {
        const i = ((l * SITES.length + s) * 5 + d) * 3;
        c.tp += b[i]! - (a?.[i] ?? 0);
        c.fp += b[i + 1]! - (a?.[i + 1] ?? 0);
        c.fn += b[i + 2]! - (a?.[i + 2] ?? 0);
      }
      return c;
    });
  });
  return out;
}

const n = (s: BackendFlashStats, k: keyof BackendFlashStats) => (typeof s[k] === "number" ? (s[k] as number) : 0);

export function decodeNumbers(done: Done): DecodeNumbers {
  const a = done.atFirst, b = done.atLast;
  const d = (k: keyof BackendFlashStats) => n(b, k) - n(a, k);
  const t = done.decodeTokens;
  const active = d("activeBytes");
  const io = d("preloadIoSeconds"), wait = d("preloadWaitSeconds");
  const prediction: Record<string, PredictionCounts[]> = {};
  SITES.forEach((site, s) => {
    const cs = b.prediction?.[s] ?? [];
    prediction[site] = cs.map((c, i) => {
      const c0 = a.prediction?.[s]?.[i] ?? { tp: 0, fp: 0, fn: 0 };
      return { tp: c.tp - c0.tp, fp: c.fp - c0.fp, fn: c.fn - c0.fn, distance: distanceOf(i, cs.length) };
    });
  });
  // Per-layer counts: [nLayer][site][distance 0..4][tp, fp, fn], flat (newer addons only).
  const la = (a as { predictionByLayer?: ArrayLike<number> }).predictionByLayer;
  const lb = (b as { predictionByLayer?: ArrayLike<number> }).predictionByLayer;
  const byLayer = lb
    ? { predictionLayers0to2: layerCounts(la, lb, 0, 3), predictionFromLayer3: layerCounts(la, lb, 3, Infinity) }
    : {};
  return {
    ...byLayer,
    tokens: t,
    seconds: done.decodeSeconds,
    tokensPerSecond: t / done.decodeSeconds,
    flashBytesPerToken: (d("bytesRead") + d("headBytesRead")) / t,
    readsPerToken: d("deviceReads") / t,
    meanReadBytes: d("deviceReads") > 0 ? d("bytesRead") / d("deviceReads") : 0,
    activeBytesPerToken: active / t,
    preloadBytesPerToken: d("preloadBytesRead") / t,
    demandBytesPerToken: d("demandBytesRead") / t,
    cacheHitRate: d("lookups") > 0 ? d("hits") / d("lookups") : 0,
    activeFromCache: active > 0 ? 1 - (d("activePreloadBytes") + d("activeDemandBytes")) / active : 0,
    activeFromPreload: active > 0 ? d("activePreloadBytes") / active : 0,
    activeOnDemand: active > 0 ? d("activeDemandBytes") / active : 0,
    ioWaitSecondsPerToken: d("ioWaitSeconds") / t,
    computeSecondsPerToken: d("columnComputeSeconds") / t,
    preloadIoSecondsPerToken: io / t,
    preloadWaitSecondsPerToken: wait / t,
    demandWaitSecondsPerToken: d("demandWaitSeconds") / t,
    overlap: io > 0 ? Math.max(0, 1 - wait / io) : 0,
    prediction,
  };
}

// Pools prediction counts of several runs and turns them into precision / recall per distance.
export function pooledPrediction(
  runs: readonly DecodeNumbers[],
  pick: (r: DecodeNumbers) => Record<string, PredictionCounts[]> | undefined = (r) => r.prediction,
): Record<string, { distance: number; precision: number | null; recall: number | null; tp: number; fp: number; fn: number }[]> {
  const out: ReturnType<typeof pooledPrediction> = {};
  for (const site of SITES) {
    const sum: PredictionCounts[] = [];
    for (const r of runs) {
      (pick(r)?.[site] ?? []).forEach((c, i, cs) => {
        const s = (sum[i] ??= { tp: 0, fp: 0, fn: 0, distance: c.distance ?? distanceOf(i, cs.length) });
        s.tp += c.tp;
        s.fp += c.fp;
        s.fn += c.fn;
      });
    }
    out[site] = sum
      .map((c) => ({
        distance: c.distance!,
        precision: c.tp + c.fp > 0 ? c.tp / (c.tp + c.fp) : null,
        recall: c.tp + c.fn > 0 ? c.tp / (c.tp + c.fn) : null,
        tp: c.tp, fp: c.fp, fn: c.fn,
      }))
      .filter((c) => c.recall !== null);
  }
  return out;
}
