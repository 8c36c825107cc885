// The paper's cost model and greedy tuner (PAPER.md, Technique 3): per token
//   T = T_demand + max(T_preload, T_compute)
// where preloads read at large-read bandwidth and on-demand misses at small-read bandwidth.
// Sparsity comes from the budget (sp = 1 - M_avail / S_weights, rounded up to a calibrated
// level, capped by a sparsity ceiling and by a quality floor on the levels' measured KL and
// top-1 agreement); then the layer-group size N grows while it still pays.
// Only the cache is retuned when the budget changes at run time (Engine.setDramBudget).
import { ActiveflowError } from "../errors.js";
import type { LevelQuality } from "../sparsity/levelQuality.js";
import { describeFloor, floorLevel, hasFloor, predictedQuality, type QualityFloor } from "../sparsity/qualityFloor.js";
import { bandwidthAt, type MachineProfile } from "./profile.js";

export interface TuneInput {
  // Bytes of the linear weights on flash (every extent) and of one layer's records.
  weightBytes: number;
  layerBytes: number;
  nLayer: number;
  // Mean record bytes of one channel of one layer (over the four sites, weighted by bytes).
  recordBytes: number;
  // DRAM the budget leaves for the cache and preload buffers (budget minus the plan's minimum
  // and the output head); see planFlashMemory.
  availableBytes: number;
  // Calibrated sparsity levels, ascending; the tuner picks one of them.
  levels: readonly number[];
  // Highest sparsity allowed, default: any level.
  maxSparsity?: number;
  // What calibrate measured each level to keep (same order as levels), and the floor it must
  // meet: the tuner picks no level above the highest that meets it. Defaults to no floor.
  quality?: LevelQuality;
  floor?: QualityFloor;
  // Group sizes to consider; one entry when the flash file already fixes N.
  groupSizes: readonly number[];
  profile: MachineProfile;
  // Cross-layer overlap of active sets (distance-1 prediction precision): how much a group's
  // union grows per extra layer. Defaults to 0.75 (measured 0.7-0.83 on SmolLM2 and the 7B).
  overlap?: number;
  // Share of missing active bytes the prediction preloads (its recall). Defaults to 0.8.
  recall?: number;
  // Whether the engine will preload (else every miss is on demand). Defaults to true.
  preload?: boolean;
}

export interface TuneEstimate {
  sparsity: number;
  groupSize: number;
  preloadBytes: number;
  cacheBytes: number;
  hitRate: number;
  bytesPerToken: number; // flash bytes read per token (preload + on demand)
  preloadSeconds: number;
  demandSeconds: number;
  computeSeconds: number;
  tokensPerSecond: number;
}

export interface TuneResult extends TuneEstimate {
  reason: string;
  candidates: TuneEstimate[];
  // The chosen level's KL and top-1 as calibrate measured them, when the table holds them.
  predictedKl?: number;
  predictedTop1?: number;
}

const PRELOAD_SLACK = 1.25; // as planFlashMemory sizes the buffers
const PRELOAD_MAX_SHARE = 0.5;
const MAX_READ = 256 << 10;

export function estimate(input: TuneInput, sparsity: number, groupSize: number): TuneEstimate {
  const { weightBytes: S, profile } = input;
  const rho = input.overlap ?? 0.75;
  const recall = input.recall ?? 0.8;
  const avail = Math.max(0, input.availableBytes);
  const groupBytes = input.layerBytes * groupSize;
  const preloadBytes = input.preload === false ? 0 : Math.min(2 * groupBytes * Math.min(1, (1 - sparsity) * PRELOAD_SLACK), avail * PRELOAD_MAX_SHARE);
  const cacheBytes = Math.max(0, avail - preloadBytes);
  // LFU over activity that is uniform at random: the hit rate is the cached share. Real
  // models have hot channels, so this errs on the slow side.
  const hitRate = Math.min(1, cacheBytes / S);
  const active = S * (1 - sparsity);
  const load = active * (1 - hitRate);
  // A group record carries N layers of a channel; the union over the group's layers grows
  // by (1 - overlap) per extra layer.
  const union = 1 + (groupSize - 1) * (1 - rho);
  const preloadRead = preloadBytes > 0 ? load * recall * union : 0;
  const demandRead = preloadBytes > 0 ? load * (1 - recall) * union : load * union;
  // Active records come in runs of about 1 / sparsity neighbours, merged into one read.
  const runBytes = Math.min(MAX_READ, (input.recordBytes * groupSize) / Math.max(sparsity, 0.05));
  const missBytes = Math.max(4096, input.recordBytes * groupSize); // leftovers are scattered
  const preloadSeconds = preloadRead / bandwidthAt(profile, runBytes);
  const demandSeconds = demandRead / bandwidthAt(profile, preloadBytes > 0 ? missBytes : runBytes);
  const computeSeconds = active / profile.columnBytesPerSecond;
  const t = demandSeconds + Math.max(preloadSeconds, computeSeconds);
  return {
    sparsity, groupSize, preloadBytes, cacheBytes, hitRate,
    bytesPerToken: preloadRead + demandRead, preloadSeconds, demandSeconds, computeSeconds,
    tokensPerSecond: t > 0 ? 1 / t : Infinity,
  };
}

export function tune(input: TuneInput): TuneResult {
  if (input.levels.length === 0) throw new ActiveflowError("BAD_ARGUMENT", "the calibration table has no sparsity levels");
  const cap = input.maxSparsity ?? Infinity;
  let allowed = input.levels.filter((l) => l <= cap + 1e-9);
  if (allowed.length === 0) throw new ActiveflowError("BAD_ARGUMENT", `no calibrated sparsity level is at or below ${cap}`);
  let floorTop = Infinity;
  if (hasFloor(input.floor)) {
    if (!input.quality) throw new ActiveflowError("BAD_ARGUMENT", `a quality floor (${describeFloor(input.floor)}) needs the levels' measured quality, which the calibration table lacks; calibrate again`);
    const top = floorLevel(input.levels, input.quality, input.floor);
    if (top === undefined) throw new ActiveflowError("BAD_ARGUMENT", `no calibrated sparsity level meets the quality floor ${describeFloor(input.floor)}`);
    floorTop = top;
    allowed = allowed.filter((l) => l <= top + 1e-9);
  }
  // Sparsity from the budget: what does not fit is what we skip.
  const want = Math.max(0, 1 - input.availableBytes / input.weightBytes);
  const level = allowed.find((l) => l >= want - 1e-9) ?? allowed.at(-1)!;
  let reason = `budget leaves ${(input.availableBytes / 2 ** 20).toFixed(0)} MiB for ${(input.weightBytes / 2 ** 20).toFixed(0)} MiB of weights: sparsity >= ${want.toFixed(2)}`;
  if (level < want - 1e-9) reason += `, capped at ${level} by ${level >= floorTop - 1e-9 ? `the quality floor (${describeFloor(input.floor!)})` : "the sparsity cap"}`;
  else reason += ` -> level ${level}`;
  const predicted = predictedQuality(input.levels, input.quality, level);
  if (predicted) reason += `; calibration measured KL ${predicted.kl.toFixed(3)}, top-1 ${predicted.top1.toFixed(3)} there`;
  // Grow N while it still pays (>= 5 % faster), as the paper stops when preload <= compute.
  const sizes = [...input.groupSizes].sort((a, b) => a - b);
  const candidates = sizes.map((n) => estimate(input, level, n));
  let best = candidates[0]!;
  for (const c of candidates.slice(1)) {
    if (best.preloadSeconds <= best.computeSeconds) break;
    if (c.tokensPerSecond < best.tokensPerSecond * 1.05) break;
    best = c;
  }
  reason += sizes.length > 1 ? `; group size ${best.groupSize} of ${sizes.join("/")}` : `; group size ${best.groupSize} (fixed by the file)`;
  return { ...best, reason, candidates, ...(predicted ? { predictedKl: predicted.kl, predictedTop1: predicted.top1 } : {}) };
}
