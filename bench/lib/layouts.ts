// Record orders inside an extent and the device reads a visit's misses turn into.
//
// Orders (a permutation: order[k] = the channel stored as record k):
//  - identity: channel j at record j (today's file);
//  - frequency: most active channels (calibration trace) first;
//  - co-activation: channels often active together sit side by side, so the misses of a token
//    fall into fewer, longer runs (the idea of Ripple, arXiv 2410.19274, and PowerInfer-2).
//    Placement is a shortest Hamiltonian path over distances 1 - similarity; Ripple builds it
//    greedily. Here: greedy edge linking (take pairs by descending similarity, join two path
//    ends when neither end already has two neighbours and no cycle forms, then chain the
//    fragments hottest first), or a nearest-neighbour walk from the hottest channel.
import { siteSpan, type Trace } from "./traceFile.js";

export const PAGE = 4096;

// Mirror of native/io/read_plan.cpp PlanReads for the records at sorted positions pos[0..n)
// of one extent (extents start on a page): page-widened, merged while the next range starts
// within maxGap bytes of the current read's end and the read stays within maxRead.
export function planReads(pos: Int32Array, n: number, recordBytes: number, maxGap: number, maxRead: number): { reads: number; bytes: number } {
  let reads = 0, bytes = 0;
  let open = false, cs = 0, ce = 0;
  const emit = (s: number, e: number) => {
    while (s < e) {
      const len = Math.min(e - s, maxRead);
      reads++;
      bytes += len;
      s += len;
    }
  };
  for (let i = 0; i < n; i++) {
    const off = pos[i]! * recordBytes;
    const s = Math.floor(off / PAGE) * PAGE;
    const e = Math.ceil((off + recordBytes) / PAGE) * PAGE;
    if (!open) {
      cs = s;
      ce = e;
      open = true;
      continue;
    }
    if (e <= ce) continue;
    if (maxGap >= 0 && s <= ce + maxGap && e - cs <= maxRead) {
      ce = e;
      continue;
    }
    emit(cs, ce);
    cs = Math.max(s, ce);
    ce = e;
  }
  if (open) emit(cs, ce);
  return { reads, bytes };
}

// Per channel, the bitset of calibration rows where it was active: [nIn][words].
export function channelRowBits(t: Trace, layer: number, site: number): { bits: Uint32Array; words: number } {
  const h = t.header;
  const { at, bytes } = siteSpan(h, layer, site);
  const words = Math.ceil(h.rows / 32);
  const bits = new Uint32Array(h.widths[site]! * words);
  for (let r = 0; r < h.rows; r++) {
    const base = r * h.rowBytes + at;
    const w = r >> 5, m = 1 << (r & 31);
    for (let b = 0; b < bytes; b++) {
      let x = t.bits[base + b]!;
      while (x) {
        const j = b * 8 + 31 - Math.clz32(x & -x);
        bits[j * words + w]! |= m;
        x &= x - 1;
      }
    }
  }
  return { bits, words };
}

function popcount(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24);
}

// Co-activation counts C[i][j] (rows where both are active) for i < j, row-major upper
// triangle, and each channel's own count.
export function coactivation(rowBits: { bits: Uint32Array; words: number }, n: number): { pair: Float64Array; single: Float64Array } {
  const { bits, words } = rowBits;
  const single = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let c = 0;
    for (let w = 0; w < words; w++) c += popcount(bits[i * words + w]!);
    single[i] = c;
  }
  const pair = new Float64Array((n * (n - 1)) / 2);
  let k = 0;
  for (let i = 0; i < n; i++) {
    const bi = i * words;
    for (let j = i + 1; j < n; j++) {
      const bj = j * words;
      let c = 0;
      for (let w = 0; w < words; w++) c += popcount(bits[bi + w]! & bits[bj + w]!);
      pair[k++] = c;
    }
  }
  return { pair, single };
}

export type Similarity = "jaccard" | "count";

function similarity(kind: Similarity, both: number, a: number, b: number): number {
  if (kind === "count") return both;
  const union = a + b - both;
  return union > 0 ? both / union : 0;
}

// Greedy edge linking into one path (Ripple's greedy Hamiltonian path).
export function greedyLinkOrder(co: { pair: Float64Array; single: Float64Array }, n: number, kind: Similarity): Int32Array {
  const { pair, single } = co;
  // Sort pairs by similarity, descending, through integer keys (similarity quantised to 2^-24).
  const m = pair.length;
  const keys = new Float64Array(m);
  let k = 0;
  const SCALE = kind === "count" ? 1 : 1 << 24;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++, k++) {
      const s = similarity(kind, pair[k]!, single[i]!, single[j]!);
      keys[k] = Math.round(s * SCALE) * 4194304 + (m - 1 - k); // ties: earlier pair first
    }
  }
  keys.sort();
  // Pair index k -> (i, j): precompute row starts of the upper triangle.
  const rowStart = new Float64Array(n);
  for (let i = 1; i < n; i++) rowStart[i] = rowStart[i - 1]! + (n - i);
  const parent = Int32Array.from({ length: n }, (_, i) => i);
  const find = (x: number): number => {
    while (parent[x] !== x) {
      parent[x] = parent[parent[x]!]!;
      x = parent[x]!;
    }
    return x;
  };
  const degree = new Uint8Array(n);
  const nb = new Int32Array(2 * n).fill(-1);
  let edges = 0;
  for (let q = m - 1; q >= 0 && edges < n - 1; q--) {
    const key = keys[q]!;
    if (Math.floor(key / 4194304) <= 0) break; // never co-active: leave to the chaining
    const idx = m - 1 - (key % 4194304);
    // Row i holds pairs [rowStart[i], rowStart[i] + n - 1 - i).
    let lo = 0, hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (rowStart[mid]! <= idx) lo = mid;
      else hi = mid - 1;
    }
    const i = lo, j = i + 1 + (idx - rowStart[i]!);
    if (degree[i]! >= 2 || degree[j]! >= 2) continue;
    const ri = find(i), rj = find(j);
    if (ri === rj) continue;
    parent[ri] = rj;
    nb[2 * i + degree[i]!] = j;
    nb[2 * j + degree[j]!] = i;
    degree[i]!++;
    degree[j]!++;
    edges++;
  }
  // Walk every fragment from an end; fragments in order of their hottest channel.
  const seen = new Uint8Array(n);
  const fragments: { hot: number; chans: number[] }[] = [];
  for (let s = 0; s < n; s++) {
    if (seen[s] || degree[s]! > 1) continue;
    const chans: number[] = [];
    let prev = -1, cur = s, hot = 0;
    while (cur >= 0 && !seen[cur]) {
      seen[cur] = 1;
      chans.push(cur);
      hot = Math.max(hot, single[cur]!);
      const a = nb[2 * cur]!, b = nb[2 * cur + 1]!;
      const nxt = a !== prev ? a : b;
      prev = cur;
      cur = nxt;
    }
    fragments.push({ hot, chans });
  }
  fragments.sort((a, b) => b.hot - a.hot);
  return Int32Array.from(fragments.flatMap((f) => f.chans));
}

// Nearest-neighbour walk: start at the hottest channel, always step to the unplaced channel
// most similar to the current one.
export function nearestNeighbourOrder(co: { pair: Float64Array; single: Float64Array }, n: number, kind: Similarity): Int32Array {
  const { pair, single } = co;
  const rowStart = new Float64Array(n);
  for (let i = 1; i < n; i++) rowStart[i] = rowStart[i - 1]! + (n - i);
  const at = (i: number, j: number) => (i < j ? rowStart[i]! + (j - i - 1) : rowStart[j]! + (i - j - 1));
  const placed = new Uint8Array(n);
  const order = new Int32Array(n);
  let cur = 0;
  for (let i = 1; i < n; i++) if (single[i]! > single[cur]!) cur = i;
  for (let k = 0; k < n; k++) {
    order[k] = cur;
    placed[cur] = 1;
    let best = -1, bestS = -1;
    for (let j = 0; j < n; j++) {
      if (placed[j]) continue;
      const s = similarity(kind, pair[at(cur, j)]!, single[cur]!, single[j]!);
      if (s > bestS || (s === bestS && single[j]! > single[best]!)) {
        bestS = s;
        best = j;
      }
    }
    cur = best;
  }
  return order;
}

// Record position of every channel for an order.
export function positionsOf(order: Int32Array): Int32Array {
  const pos = new Int32Array(order.length);
  order.forEach((ch, k) => (pos[ch] = k));
  return pos;
}
