// How often each input channel is active at a sparsity level's calibrated thresholds, over the
// calibration text: the statistic a hot-first record order and the static cache set are made
// from (src/flash/reorder.ts). Never measured on evaluation text.
import { SITES } from "../backend/Backend.js";
import type { SparsityTarget } from "./target.js";
import type { ChannelActivity } from "../flash/reorder.js";
import { thresholdsFor, type ThresholdTable } from "./thresholds.js";

// Per (layer group, site, channel): the layer visits per token in which the channel is active
// (for groups of one layer, the fraction of tokens), over `windows` teacher-forced.
export async function channelActivity(
  engine: SparsityTarget,
  table: ThresholdTable,
  sparsity: number,
  windows: readonly number[][],
  groupSize: number,
  options: { signal?: AbortSignal; onProgress?: (fraction: number) => void } = {},
): Promise<ChannelActivity> {
  // The table's rule: its thresholds are on |x|, or on |x| x column norm.
  engine.setColumnNorms(table.selection === "weight" ? table.columnNorms! : null);
  engine.setThresholds(thresholdsFor(table, sparsity));
  engine.setActivationCapture(true, false, true);
  let counts;
  try {
    for (const [i, w] of windows.entries()) {
      await engine.evaluateLogits(w, options.signal);
      options.onProgress?.((i + 1) / windows.length);
    }
    counts = engine.activationCounts(true);
  } finally {
    engine.setActivationCapture(false, false, true);
  }
  const nLayer = engine.config.nLayer;
  const groups = Math.ceil(nLayer / groupSize);
  const layerWidth = counts.widths.reduce((a, b) => a + b, 0);
  const out: ChannelActivity = new Map();
  let siteOffset = 0;
  for (const [s, site] of SITES.entries()) {
    const nIn = counts.widths[s]!;
    const a = new Float64Array(groups * nIn);
    for (let l = 0; l < nLayer; l++) {
      const g = Math.floor(l / groupSize);
      const from = l * layerWidth + siteOffset;
      for (let j = 0; j < nIn; j++) a[g * nIn + j] = a[g * nIn + j]! + counts.counts[from + j]! / Math.max(1, counts.rows);
    }
    out.set(site, a);
    siteOffset += nIn;
  }
  return out;
}
