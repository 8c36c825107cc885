// Sparsity "auto": the tuner's input from a flash model under a plan, the quality floor, and
// the defaults a load uses for preloading and the sparsity cap.
import type { Backend } from "../backend/Backend.js";
import type { FlashModel } from "../flash/open.js";
import type { FlashMemoryPlan } from "../memory/budget.js";
import { machineProfile, type MachineProfile } from "../pipeline/profile.js";
import { tune, type TuneInput } from "../pipeline/tuner.js";
import { checkQualityFloor, hasFloor, type QualityFloor } from "../sparsity/qualityFloor.js";
import type { ThresholdTable } from "../sparsity/thresholds.js";
import type { LoadOptions, TuningStats } from "./types.js";

// Preloading is off unless asked for: on this machine (2 vCPUs, virtio SSD) loading misses on
// demand was faster on every model and budget we measured (7B random weights, group size 1:
// 0.385 vs 0.307 tok/s at 50 %, 0.274 vs 0.217 at 25 %; bench/results/pipeline-2026-11-22T04-40-12Z.json):
// the prediction's false positives (precision 0.8) cost more flash time than the overlap
// with ~1 s of compute per token saves.
export const PRELOAD_DEFAULT = false;

// Without a quality floor the tuner stops here: above 0.5 the undistilled models we measured
// lose too much (SmolLM2 top-1 agreement 0.56 at 0.5, perplexity x40 at 0.7).
export const AUTO_MAX_SPARSITY = 0.5;

// sparsity "auto": the tuner's choice for what the budget leaves beyond the fixed parts.
// The tuner's view of a flash model under a plan (its cache and preload room).
export function tuneInputOf(flash: FlashModel, noPreload: FlashMemoryPlan, levels: readonly number[], options: LoadOptions, profile: MachineProfile): TuneInput {
  const weightBytes = flash.extents.reduce((n, e) => n + e.bytes, 0);
  // Mean record bytes of one channel of one layer, weighted by bytes.
  let num = 0, den = 0;
  for (const e of flash.extents) {
    const perLayer = e.recordBytes / e.layers;
    num += perLayer * perLayer * e.nIn;
    den += perLayer * e.nIn;
  }
  return {
    weightBytes,
    layerBytes: weightBytes / flash.nLayer,
    nLayer: flash.nLayer,
    recordBytes: den > 0 ? num / den : 4096,
    availableBytes: noPreload.cacheBytes / 0.98,
    levels,
    maxSparsity: options.maxSparsity ?? AUTO_MAX_SPARSITY,
    groupSizes: [flash.groupSize],
    preload: options.preload ?? PRELOAD_DEFAULT,
    profile,
  };
}

// The quality floor of sparsity "auto", checked; undefined when none is asked for.
export function qualityFloorOf(options: LoadOptions): QualityFloor | undefined {
  const floor: QualityFloor = {
    ...(options.maxKl !== undefined ? { maxKl: options.maxKl } : {}),
    ...(options.minTop1 !== undefined ? { minTop1: options.minTop1 } : {}),
  };
  if (!hasFloor(floor)) return undefined;
  checkQualityFloor(floor);
  return floor;
}

// sparsity "auto": the tuner's choice for what the budget leaves beyond the fixed parts.
export async function tuneFor(backend: Backend, flash: FlashModel, table: ThresholdTable, noPreload: FlashMemoryPlan, options: LoadOptions): Promise<TuningStats> {
  const floor = qualityFloorOf(options);
  const input: TuneInput = {
    ...tuneInputOf(flash, noPreload, table.levels, options, await machineProfile(backend, flash.path)),
    ...(table.quality ? { quality: table.quality } : {}),
    ...(floor ? { floor } : {}),
  };
  // A floor replaces the default cap (which stands in for one); an explicit maxSparsity stays.
  if (floor && options.maxSparsity === undefined) delete input.maxSparsity;
  const chosen = tune(input);
  const best = tune({ ...input, groupSizes: [1, 2, 4, 8] });
  options.log?.(`tuner: ${chosen.reason}; predicted ${chosen.tokensPerSecond.toFixed(2)} tok/s`);
  return {
    sparsity: chosen.sparsity,
    groupSize: flash.groupSize,
    recommendedGroupSize: best.groupSize,
    cacheBytes: chosen.cacheBytes,
    preloadBytes: chosen.preloadBytes,
    predictedTokensPerSecond: chosen.tokensPerSecond,
    predictedBytesPerToken: chosen.bytesPerToken,
    reason: chosen.reason,
    ...(chosen.predictedKl !== undefined ? { predictedKl: chosen.predictedKl } : {}),
    ...(chosen.predictedTop1 !== undefined ? { predictedTop1: chosen.predictedTop1 } : {}),
    ...(floor ? { floor } : {}),
  };
}
