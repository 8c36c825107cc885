// The engine's side of experts on flash: the spec the backend's expert store is built from,
// and its counters in the units `run --json` reports.
import type { BackendExpertStats, BackendExperts } from "../backend/Backend.js";
import type { FlashModel } from "../flash/open.js";
import type { ExpertRunStats } from "./types.js";

// poolBytes: the expert slots' share of the budget (splitCache).
export function expertSpec(flash: FlashModel, poolBytes: number, pregate: boolean): BackendExperts {
  const shape = flash.expertShape!;
  return {
    perLayer: shape.nExpert + (shape.shared ? 1 : 0),
    poolBytes,
    pregate,
    spans: flash.experts.map((x) => {
      const plane = (k: number): number => (x.scales ? x.scales.dataOffset - x.in.dataOffset + x.scales.planeOffsets[k]! : -1);
      const parts = [x.in.parts[0]!, x.in.parts[1]!, x.out.parts[0]!];
      return {
        offset: x.offset,
        bytes: x.spanBytes,
        outOffset: x.out.dataOffset - x.in.dataOffset,
        recIn: x.in.recordBytes,
        recOut: x.out.recordBytes,
        nIn: x.in.nIn,
        nFf: x.nFf,
        parts: parts.map((p, k) => ({ offset: p.offset, bytes: p.bytes, nOut: p.nOut, type: p.type, scales: plane(k) })),
      };
    }),
  };
}

// Pre-gating reads ahead only with a spare slot for every one the computing layer pins
// (ExpertStore::prefetch; splitCache reserves them when the budget allows): requested is
// whether it was asked for, minSlots the slots a layer pins (top-k and the shared expert).
export function pregateState(requested: boolean, slots: number, minSlots: number, slotBytes: number): { readsAhead: boolean; off: string | null } {
  if (!requested) return { readsAhead: false, off: "not requested" };
  if (slots >= 2 * minSlots) return { readsAhead: true, off: null };
  return {
    readsAhead: false,
    off: `lack of slots: the budget holds ${slots} expert slots, pre-gating needs ${2 * minSlots} (${minSlots} for the layer computing and ${minSlots} for the next layer's predicted experts), ` +
      `about ${((2 * minSlots - slots) * slotBytes / (1 << 20)).toFixed(1)} MiB more`,
  };
}

export function expertRunStats(s: BackendExpertStats, pregateRequested: boolean, minSlots: number): ExpertRunStats {
  const predicted = s.predTp + s.predFp, actual = s.predTp + s.predFn;
  const state = pregateState(pregateRequested, s.slots, minSlots, s.slotBytes);
  return {
    lookups: s.lookups,
    expertsRead: s.reads,
    expertsPrefetched: s.prefetches,
    expertBytesRead: s.bytesRead,
    cacheHitRate: s.lookups > 0 ? s.hits / s.lookups : 0,
    prefetchHitRate: s.lookups > 0 ? s.prefetchHits / s.lookups : 0,
    pregating: {
      ...state,
      distance: 1,
      truePositives: s.predTp, falsePositives: s.predFp, falseNegatives: s.predFn,
      precision: predicted > 0 ? s.predTp / predicted : null,
      recall: actual > 0 ? s.predTp / actual : null,
    },
    slots: s.slots,
    slotBytes: s.slotBytes,
    cachedExperts: s.cachedExperts,
    ioWaitSeconds: s.waitSeconds,
    computeSeconds: s.computeSeconds,
  };
}
