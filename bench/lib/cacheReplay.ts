// Replays traces through cache policies and record layouts, extent by extent (see
// bench/cachesim.ts for what is mirrored from the engine).
import { SITES } from "../../src/backend/Backend.js";
import type { ExtentPolicy } from "./cachePolicies.js";
import type { SimExtent } from "./flashGeometry.js";
import { channelRowBits, coactivation, greedyLinkOrder, nearestNeighbourOrder, planReads, positionsOf } from "./layouts.js";
import { siteSpan, type Trace } from "./traceFile.js";
import { channelCounts, extentVisits, rankByCount, type ReplayMode } from "./traceVisits.js";

export interface PolicySpec {
  name: string;
  note: string;
  candidate: boolean; // may become the default (ceilings are not)
  make(e: SimExtent, cap: number, ei: number): ExtentPolicy;
  // Slots per extent for a cache of `fraction` of the extent bytes; default: proportional.
  caps?(fraction: number): Int32Array;
}

export const capOf = (p: PolicySpec, f: number, e: SimExtent, ei: number): number => (p.caps ? p.caps(f)[ei]! : Math.floor(Math.min(1, f) * e.nIn));

export interface Counters { lookups: number; hits: number; bytes: number; hitBytes: number }
interface Tally { decode: Counters; all: Counters; decodeBySite: Counters[]; decodeTokens: number }
const zero = (): Counters => ({ lookups: 0, hits: 0, bytes: 0, hitBytes: 0 });

// warm: the trace's sequences back to back in one cache (LFU counts restart where the engine
// restarts them: a fresh context); cold: every sequence from an empty cache (one run each).
export type Mode = "warm" | "cold";

export interface Row {
  policy: string;
  cacheFraction: number;
  mode: Mode;
  decodeHitRate: { channels: number; bytes: number };
  allHitRate: { channels: number; bytes: number };
  decodeHitRateBySite: Record<string, { channels: number; bytes: number }>;
  activeBytesPerToken: number;
  decodeTokens: number;
  // For the engine check: raw counts over every visit.
  allCounts: Counters;
}

const rate = (c: Counters) => ({ channels: c.lookups ? c.hits / c.lookups : 0, bytes: c.bytes ? c.hitBytes / c.bytes : 0 });

export function simulate(t: Trace, replay: ReplayMode, extents: readonly SimExtent[], policies: readonly PolicySpec[], fracs: readonly number[], modes: readonly Mode[]): Row[] {
  const tallies = new Map<string, Tally>();
  const miss = new Int32Array(4096);
  for (const [ei, e] of extents.entries()) {
    const v = extentVisits(t, e.layer, e.site, replay);
    for (const p of policies) {
      for (const f of fracs) {
        const cap = capOf(p, f, e, ei);
        for (const mode of modes) {
          const key = `${p.name}|${f}|${mode}`;
          let tally = tallies.get(key);
          if (!tally) tallies.set(key, (tally = { decode: zero(), all: zero(), decodeBySite: SITES.map(zero), decodeTokens: 0 }));
          let pol = p.make(e, cap, ei);
          for (let i = 0; i < v.count; i++) {
            if (mode === "cold" && i > 0 && v.sequence[i] !== v.sequence[i - 1]) pol = p.make(e, cap, ei);
            else if (v.fresh[i]) pol.startSequence();
            const a = v.offsets[i]!, n = v.offsets[i + 1]! - a;
            const hits = pol.visit(v.channels.subarray(a, a + n), n, v.rows[i]!, miss);
            const add = (c: Counters) => {
              c.lookups += n;
              c.hits += hits;
              c.bytes += n * e.recordBytes;
              c.hitBytes += hits * e.recordBytes;
            };
            add(tally.all);
            if (v.decode[i]) {
              add(tally.decode);
              add(tally.decodeBySite[e.site]!);
              if (ei === 0) tally.decodeTokens++;
            }
          }
        }
      }
    }
  }
  return [...tallies.entries()].map(([key, t]) => {
    const [policy, f, mode] = key.split("|");
    return {
      policy: policy!, cacheFraction: Number(f), mode: mode as Mode,
      decodeHitRate: rate(t.decode), allHitRate: rate(t.all),
      decodeHitRateBySite: Object.fromEntries(SITES.map((s, i) => [s, rate(t.decodeBySite[i]!)])),
      activeBytesPerToken: t.decodeTokens ? t.decode.bytes / t.decodeTokens : 0,
      decodeTokens: t.decodeTokens,
      allCounts: t.all,
    };
  });
}

// A static split of a cache of `fraction` of the extent bytes over all extents at once: the
// channels with the highest calibration rate anywhere, as long as their records fit (a miss
// costs its record's bytes, so bytes served per byte cached is the rate). Returns slots per
// extent; each extent's cached channels are the first slots of its ranking.
export function globalCaps(extents: readonly SimExtent[], rates: readonly Float64Array[], fraction: number): Int32Array {
  const total = extents.reduce((a, e) => a + e.nIn * e.recordBytes, 0);
  let left = fraction * total;
  const items: { r: number; ei: number }[] = [];
  rates.forEach((rs, ei) => rs.forEach((r) => items.push({ r, ei })));
  items.sort((a, b) => b.r - a.r || a.ei - b.ei);
  const caps = new Int32Array(extents.length);
  for (const it of items) {
    const b = extents[it.ei]!.recordBytes;
    if (b <= left) {
      caps[it.ei]!++;
      left -= b;
    }
  }
  return caps;
}

export interface LayoutOrders { name: string; positions: Int32Array[] }

// Record orders of every extent from a (calibration) trace.
export function layoutOrders(t: Trace, extents: readonly SimExtent[], log: (s: string) => void): LayoutOrders[] {
  const names = ["identity", "frequency", "coact-link-jaccard", "coact-link-count", "coact-nn-jaccard"];
  const out: LayoutOrders[] = names.map((name) => ({ name, positions: [] }));
  for (const [ei, e] of extents.entries()) {
    const n = e.nIn;
    out[0]!.positions.push(Int32Array.from({ length: n }, (_, i) => i));
    out[1]!.positions.push(positionsOf(rankByCount(channelCounts(t, e.layer, e.site))));
    const co = coactivation(channelRowBits(t, e.layer, e.site), n);
    out[2]!.positions.push(positionsOf(greedyLinkOrder(co, n, "jaccard")));
    out[3]!.positions.push(positionsOf(greedyLinkOrder(co, n, "count")));
    out[4]!.positions.push(positionsOf(nearestNeighbourOrder(co, n, "jaccard")));
    if (ei % 30 === 29) log(`  orders: ${ei + 1}/${extents.length} extents`);
  }
  return out;
}

export interface ReadRow {
  trace: string;
  format: string;
  policy: string;
  cacheFraction: number;
  layout: string;
  gap: number;
  bytesPerToken: number;
  readsPerToken: number;
  meanReadBytes: number;
  missRecordBytesPerToken: number;
  decodeTokens: number;
}

// The device reads of every decode token's misses, per order and merge gap.
export function readStudy(trace: string, t: Trace, orders: readonly LayoutOrders[], format: string, extents: readonly SimExtent[], policy: PolicySpec, f: number, gaps: readonly number[], maxRead: number): ReadRow[] {
  const acc = orders.map(() => gaps.map(() => ({ reads: 0, bytes: 0 })));
  let missBytes = 0, tokens = 0;
  const miss = new Int32Array(4096), pos = new Int32Array(4096);
  for (const [ei, e] of extents.entries()) {
    const v = extentVisits(t, e.layer, e.site, "passes");
    const pol = policy.make(e, capOf(policy, f, e, ei), ei);
    for (let i = 0; i < v.count; i++) {
      if (v.fresh[i]) pol.startSequence();
      const a = v.offsets[i]!, n = v.offsets[i + 1]! - a;
      const hits = pol.visit(v.channels.subarray(a, a + n), n, v.rows[i]!, miss);
      if (!v.decode[i]) continue;
      if (ei === 0) tokens++;
      const m = n - hits;
      missBytes += m * e.recordBytes;
      orders.forEach((o, oi) => {
        const p = o.positions[ei]!;
        for (let k = 0; k < m; k++) pos[k] = p[miss[k]!]!;
        const sorted = pos.subarray(0, m).sort();
        gaps.forEach((g, gi) => {
          const r = planReads(sorted, m, e.recordBytes, g, maxRead);
          acc[oi]![gi]!.reads += r.reads;
          acc[oi]![gi]!.bytes += r.bytes;
        });
      });
    }
  }
  return orders.flatMap((o, oi) => gaps.map((g, gi) => {
    const c = acc[oi]![gi]!;
    return {
      trace, format, policy: policy.name, cacheFraction: f, layout: o.name, gap: g,
      bytesPerToken: c.bytes / tokens, readsPerToken: c.reads / tokens, meanReadBytes: c.reads ? c.bytes / c.reads : 0,
      missRecordBytesPerToken: missBytes / tokens, decodeTokens: tokens,
    };
  }));
}

// The control: a trace shaped like `like` whose bits are independent Bernoulli draws with the
// per-channel rates of `rates` (no co-activation, no locality in time).
export function bernoulliTrace(like: Trace, rates: Trace, extents: readonly SimExtent[], seed: number): Trace {
  const h = like.header;
  const bits = new Uint8Array(h.rows * h.rowBytes);
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
  for (const e of extents) {
    const p = channelCounts(rates, e.layer, e.site).map((c) => c / rates.header.rows);
    const { at } = siteSpan(h, e.layer, e.site);
    for (let r = 0; r < h.rows; r++) {
      const base = r * h.rowBytes + at;
      for (let j = 0; j < e.nIn; j++) if (next() < p[j]!) bits[base + (j >> 3)]! |= 1 << (j & 7);
    }
  }
  return { header: { ...h, notes: [...h.notes, `control: independent Bernoulli bits with the per-channel rates of the calibration trace (seed ${seed})`] }, bits };
}
