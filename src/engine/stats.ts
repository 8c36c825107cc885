// Mapping the backend's flash counters into the run stats `run --json` reports.
import { SITES, type BackendFlashStats } from "../backend/Backend.js";
import type { PreloadRunStats } from "./types.js";

// The pipeline's share of the work: where active bytes came from, how much preload I/O hid
// behind compute, and how well the active sets were predicted (decode tokens only).
export function preloadStats(f: BackendFlashStats, bufferBytes: number, groupSize: number, readAhead: boolean): PreloadRunStats {
  const active = f.activeBytes ?? 0;
  const io = f.preloadIoSeconds ?? 0;
  const wait = f.preloadWaitSeconds ?? 0;
  // Index 0 is half a layer ahead (one sub-block), then 1..4 layers.
  const rate = (c: { tp: number; fp: number; fn: number }, i: number) => ({
    distance: i === 0 ? 0.5 : i,
    precision: c.tp + c.fp > 0 ? c.tp / (c.tp + c.fp) : null,
    recall: c.tp + c.fn > 0 ? c.tp / (c.tp + c.fn) : null,
  });
  const prediction: PreloadRunStats["prediction"] = {};
  SITES.forEach((site, s) => {
    prediction[site] = (f.prediction?.[s] ?? []).map(rate).filter((c) => c.recall !== null);
  });
  const predictionFromLayer3: PreloadRunStats["predictionFromLayer3"] = {};
  const byLayer = f.predictionByLayer;
  const D = 5, per = SITES.length * D * 3;
  if (byLayer && byLayer.length % per === 0) {
    SITES.forEach((site, s) => {
      const sums = Array.from({ length: D }, () => ({ tp: 0, fp: 0, fn: 0 }));
      for (let l = 3; l < byLayer.length / per; l++) {
        for (let d = 0; d < D; d++) {
          const at = ((l * SITES.length + s) * D + d) * 3;
          sums[d]!.tp += byLayer[at]!;
          sums[d]!.fp += byLayer[at + 1]!;
          sums[d]!.fn += byLayer[at + 2]!;
        }
      }
      predictionFromLayer3[site] = sums.map(rate).filter((c) => c.recall !== null);
    });
  }
  return {
    enabled: bufferBytes > 0,
    readAhead,
    groupSize,
    bufferBytes,
    preloadBytesRead: f.preloadBytesRead ?? 0,
    demandBytesRead: f.demandBytesRead ?? 0,
    readsWithdrawn: f.readsWithdrawn ?? 0,
    activeFromCache: active > 0 ? 1 - ((f.activePreloadBytes ?? 0) + (f.activeDemandBytes ?? 0)) / active : 0,
    activeFromPreload: active > 0 ? (f.activePreloadBytes ?? 0) / active : 0,
    activeOnDemand: active > 0 ? (f.activeDemandBytes ?? 0) / active : 0,
    preloadIoSeconds: io,
    preloadWaitSeconds: wait,
    demandWaitSeconds: f.demandWaitSeconds ?? 0,
    overlap: io > 0 ? Math.max(0, 1 - wait / io) : 0,
    prediction,
    predictionFromLayer3,
  };
}
