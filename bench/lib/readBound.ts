// The least flash time per token a model, budget and sparsity allow on a device: for random
// activations (each input channel of a site active with probability p, independently), the
// records a token needs are the active ones outside the hot cache; each read strategy turns them
// into device reads (exact records, runs merged across gaps up to G, one span, or the engine's
// cost-curve planner) and the device's measured curve prices every read. The bound per extent
// is the cheapest strategy; the token's flash time is their sum. Random-weight models have no
// locality, so this is the bound for them; real activations need traces.
import type { NativeAddon } from "../../src/backends/native/binding.js";
import type { FlashModel } from "../../src/flash/open.js";
import { SITES } from "../../src/backend/Backend.js";

export interface DevicePoint {
  bytes: number;
  queueDepth: number;
  bytesPerSecond: number;
  iops: number;
  p50LatencyUs: number;
  p99LatencyUs: number;
}

export type Cost = { bytes: number[]; seconds: number[] };

// The device's best point per size (over queue depths): seconds per read = size / bandwidth.
export function bestCurve(points: readonly DevicePoint[]): Cost {
  const best = new Map<number, number>();
  for (const p of points) best.set(p.bytes, Math.max(best.get(p.bytes) ?? 0, p.bytesPerSecond));
  const sizes = [...best.keys()].sort((a, b) => a - b);
  return { bytes: sizes, seconds: sizes.map((s) => s / best.get(s)!) };
}

// The curve at one queue depth (what a reader keeping that depth gets).
export function curveAt(points: readonly DevicePoint[], qd: number): Cost {
  const at = points.filter((p) => p.queueDepth === qd).sort((a, b) => a.bytes - b.bytes);
  return { bytes: at.map((p) => p.bytes), seconds: at.map((p) => p.bytes / p.bytesPerSecond) };
}

export type CacheLayout = "prefix" | "scattered";
// How the cache is split over extents: in proportion to their size, or to extents whose
// records cost the most device time per byte first (small records waste pages and IOPS).
export type CacheSplit = "proportional" | "price";
export const STRATEGIES = ["exact", "gap4k", "gap16k", "gap64k", "gap256k", "span", "planner"] as const;
export type Strategy = (typeof STRATEGIES)[number];

export interface BoundInput {
  flash: FlashModel;
  // Hot cache bytes, split over the extents in proportion to their size (as HotCache does).
  cacheBytes: number;
  // Probability that an input channel of each site is active (1 - sparsity, or measured).
  activeFraction: readonly number[]; // [4] in SITES order
  layout: CacheLayout;
  split: CacheSplit;
  // Curve used to price the reads (the device's best points) and the one the engine's planner
  // merges with (its own queue depth).
  price: Cost;
  plannerCost: Cost;
  maxRead: number;
  tokens: number; // random tokens drawn per extent
  seed: number;
}

export interface BoundResult {
  layout: CacheLayout;
  split: CacheSplit;
  // Device seconds per token by strategy (every extent read that way) and the best per extent.
  secondsByStrategy: Record<Strategy, number>;
  bestSeconds: number;
  bestStrategyBytes: Record<Strategy, number>; // bytes per token each strategy reads
  neededBytesPerToken: number; // active records outside the cache
  activeBytesPerToken: number; // every active record (what compute touches)
}

// xorshift32 in [0, 1)
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

// Records cached per extent.
export function splitCache(addon: NativeAddon, input: Pick<BoundInput, "flash" | "cacheBytes" | "split" | "plannerCost">): number[] {
  const ex = input.flash.extents;
  const total = ex.reduce((n, e) => n + e.nIn * e.recordBytes, 0);
  if (input.split === "proportional") {
    const frac = Math.min(1, input.cacheBytes / total);
    return ex.map((e) => Math.floor(frac * e.nIn));
  }
  // Device seconds per byte of a record read alone (page-widened: about one page more).
  const price = ex.map((e) => addon.readCostSeconds(input.plannerCost, Uint32Array.of(e.recordBytes + 4096)) / e.recordBytes);
  const order = ex.map((_, i) => i).sort((a, b) => price[b]! - price[a]! || a - b);
  const caps = ex.map(() => 0);
  let left = input.cacheBytes;
  for (const i of order) {
    const e = ex[i]!;
    caps[i] = Math.min(e.nIn, Math.floor(left / e.recordBytes));
    left -= caps[i]! * e.recordBytes;
  }
  return caps;
}

export function readBound(addon: NativeAddon, input: BoundInput): BoundResult {
  const { flash } = input;
  const caps = splitCache(addon, input);
  const rand = rng(input.seed);
  const secs = Object.fromEntries(STRATEGIES.map((s) => [s, 0])) as Record<Strategy, number>;
  const bytes = Object.fromEntries(STRATEGIES.map((s) => [s, 0])) as Record<Strategy, number>;
  let best = 0, needed = 0, active = 0;
  const fileSize = Number.MAX_SAFE_INTEGER;
  for (const [ei, e] of flash.extents.entries()) {
    const p = input.activeFraction[SITES.indexOf(e.site)] ?? 0.5;
    const cap = caps[ei]!;
    const cached = new Uint8Array(e.nIn);
    if (input.layout === "prefix") cached.fill(1, 0, cap);
    else {
      const idx = Array.from({ length: e.nIn }, (_, i) => i);
      for (let i = 0; i < cap; i++) {
        const k = i + Math.floor(rand() * (e.nIn - i));
        [idx[i], idx[k]] = [idx[k]!, idx[i]!];
        cached[idx[i]!] = 1;
      }
    }
    for (let t = 0; t < input.tokens; t++) {
      const offs: number[] = [];
      for (let j = 0; j < e.nIn; j++) {
        if (rand() >= p) continue;
        active += e.recordBytes;
        if (!cached[j]) offs.push(e.offset + j * e.recordBytes);
      }
      needed += offs.length * e.recordBytes;
      if (offs.length === 0) continue;
      const o = Float64Array.from(offs), l = new Uint32Array(offs.length).fill(e.recordBytes);
      let bestHere = Infinity;
      for (const s of STRATEGIES) {
        let plan;
        if (s === "span") {
          const first = offs[0]!, end = offs.at(-1)! + e.recordBytes;
          plan = addon.planFlashReads(Float64Array.of(first), Uint32Array.of(end - first), -1, input.maxRead, fileSize);
        } else if (s === "planner") {
          plan = addon.planFlashReads(o, l, 0, input.maxRead, fileSize, input.plannerCost);
        } else {
          const gap = s === "exact" ? 0 : { gap4k: 4096, gap16k: 16384, gap64k: 65536, gap256k: 262144 }[s];
          plan = addon.planFlashReads(o, l, gap, input.maxRead, fileSize);
        }
        const t = addon.readCostSeconds(input.price, plan.lengths);
        secs[s] += t;
        bytes[s] += plan.lengths.reduce((n, x) => n + x, 0);
        bestHere = Math.min(bestHere, t);
      }
      best += bestHere;
    }
  }
  const k = 1 / input.tokens;
  for (const s of STRATEGIES) {
    secs[s] *= k;
    bytes[s] *= k;
  }
  return {
    layout: input.layout, split: input.split, secondsByStrategy: secs, bestSeconds: best * k, bestStrategyBytes: bytes,
    neededBytesPerToken: needed * k, activeBytesPerToken: active * k,
  };
}
