// The flash geometry the cache simulator mirrors: record bytes of every extent (group size 1:
// one extent per (layer, site)) and the cache the engine's budget planner leaves, for the
// column format in the file and for hypothetical formats of other record sizes.
import type { FlashModel } from "../../src/flash/open.js";
import { rowBytes } from "../../src/flash/format.js";
import { GgmlType } from "../../src/gguf/types.js";
import type { ModelConfig } from "../../src/model/config.js";
import { planFlashMemory, weightBytesOf, type FlashMemoryPlan } from "../../src/memory/budget.js";
import { loadAddon } from "../../src/backends/native/binding.js";

export interface SimExtent {
  layer: number;
  site: number; // index in SITES
  nIn: number;
  recordBytes: number;
}

// How columns are stored: bytes of one column of n outputs on flash, and bytes per column
// kept resident (block scales of an exact format).
export interface ColumnFormat {
  name: string;
  description: string;
  flashBytes: (nOut: number) => number;
  // Resident bytes per weight (scales kept in DRAM), 0 when the record carries them.
  residentPerWeight: number;
}

export const FORMATS: Record<string, ColumnFormat> = {
  "q8_0-columns": {
    name: "q8_0-columns",
    description: "today's default for a 4-6 bit source: Q8_0 columns (34 bytes per 32 weights) on flash",
    flashBytes: (n) => rowBytes(GgmlType.Q8_0, n),
    residentPerWeight: 0,
  },
  "q4_1-exact": {
    name: "q4_1-exact",
    description: "the source's size: Q4_1 codes on flash (16 bytes per 32 weights), the blocks' scale and min (4 bytes per 32 weights) resident",
    flashBytes: (n) => n / 2,
    residentPerWeight: 4 / 32,
  },
  "q4_1-columns": {
    name: "q4_1-columns",
    description: "Q4_1 columns requantised (20 bytes per 32 weights) on flash: today's --column-type q4_1, lossy",
    flashBytes: (n) => rowBytes(GgmlType.Q4_1, n),
    residentPerWeight: 0,
  },
};

export interface GeometryCase {
  format: string;
  description: string;
  extents: SimExtent[]; // [layer * 4 + site]
  recordBytes: number[]; // per site
  extentBytes: number;
  residentScaleBytes: number;
  budgetBytes: number;
  plan: FlashMemoryPlan;
  // Cache bytes / extent bytes: with the proportional split, every extent caches this share.
  cacheFraction: number;
}

// The geometry of `format` for `flash`'s model at `budget` ("35%" of that format's weight
// bytes), with the planner the engine uses (src/memory/budget.ts planFlashMemory).
export function geometryFor(flash: FlashModel, cfg: ModelConfig, format: ColumnFormat, budgetShare: number, nCtx: number, threads: number, sparsity: number): GeometryCase {
  const recordBytes = flash.sites.map((s) => s.nOut.reduce((a, n) => a + format.flashBytes(n), 0));
  const weightsPerLayer = flash.sites.reduce((a, s) => a + s.nIn * s.nOut.reduce((x, n) => x + n, 0), 0);
  const residentScaleBytes = Math.round(weightsPerLayer * flash.nLayer * format.residentPerWeight);
  const extents: SimExtent[] = [];
  for (let layer = 0; layer < flash.nLayer; layer++) {
    flash.sites.forEach((s, site) => extents.push({ layer, site, nIn: s.nIn, recordBytes: recordBytes[site]! }));
  }
  const extentBytes = extents.reduce((a, e) => a + e.nIn * e.recordBytes, 0);
  // The planner reads resident tensor bytes and extent bytes/groups only.
  const model = {
    ...flash,
    resident: [...flash.resident, ...(residentScaleBytes > 0 ? [{ ...flash.resident[0]!, name: "column_scales", bytes: residentScaleBytes }] : [])],
    extents: extents.map((e, i) => ({ ...flash.extents[i]!, recordBytes: e.recordBytes, bytes: e.nIn * e.recordBytes })),
  } as FlashModel;
  const budgetBytes = Math.floor(weightBytesOf(model) * budgetShare);
  const plan = planFlashMemory(model, cfg, nCtx, threads, budgetBytes, { io: loadAddon().ioDefaults(), sparsity, preload: false, groupSize: 1 });
  return {
    format: format.name, description: format.description, extents, recordBytes, extentBytes, residentScaleBytes, budgetBytes, plan,
    cacheFraction: Math.min(1, plan.cacheBytes / extentBytes),
  };
}

// Slots per extent for a cache of `fraction` of every extent (native plan_cache: proportional).
export function proportionalCaps(extents: readonly SimExtent[], fraction: number): Int32Array {
  return Int32Array.from(extents, (e) => Math.floor(Math.min(1, fraction) * e.nIn));
}
