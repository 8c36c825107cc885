// Visits of one extent replayed from a trace: the active channels the engine's column store
// looks up per pass. "passes": one visit per evaluation pass, the union of its rows (what the
// engine does: a prefill chunk reads every channel active in any of its tokens). "rows": one
// visit per row, as if every token were decoded alone (for teacher-forced text).
import { siteSpan, type Trace } from "./traceFile.js";

export interface Visits {
  offsets: Int32Array; // [visits + 1] into channels
  channels: Int32Array; // active channels of each visit, ascending
  rows: Int32Array; // tokens of each visit
  decode: Uint8Array; // 1 for a decode token (or a teacher-forced row in "rows" mode)
  sequence: Int32Array; // index of the visit's sequence in the trace header
  fresh: Uint8Array; // 1 at the first visit of a sequence that starts from an empty context
  count: number;
}

export type ReplayMode = "passes" | "rows";

// Pass ranges [firstRow, rows] of the trace, with their sequence and decode flag.
interface PassInfo {
  firstRow: number;
  rows: number;
  sequence: number;
  decode: boolean;
  fresh: boolean;
}

function passInfos(t: Trace, mode: ReplayMode): PassInfo[] {
  const out: PassInfo[] = [];
  const h = t.header;
  h.sequences.forEach((s, si) => {
    if (mode === "rows") {
      for (let r = 0; r < s.rows; r++) out.push({ firstRow: s.firstRow + r, rows: 1, sequence: si, decode: true, fresh: r === 0 && s.freshContext });
      return;
    }
    let row = s.firstRow, prefill = s.prefillRows;
    for (let p = 0; p < s.passes; p++) {
      const n = h.passes[s.firstPass + p]!;
      // Teacher-forced text counts every pass; generation, only the passes after the prompt.
      const decode = s.mode === "teacher-forced" ? true : prefill <= 0;
      out.push({ firstRow: row, rows: n, sequence: si, decode, fresh: p === 0 && s.freshContext });
      prefill -= n;
      row += n;
    }
  });
  return out;
}

export function extentVisits(t: Trace, layer: number, site: number, mode: ReplayMode): Visits {
  const h = t.header;
  const { at, bytes } = siteSpan(h, layer, site);
  const passes = passInfos(t, mode);
  const n = passes.length;
  const offsets = new Int32Array(n + 1);
  const width = h.widths[site]!;
  let channels = new Int32Array(Math.max(1024, n * width >> 1));
  const rows = new Int32Array(n), decode = new Uint8Array(n), sequence = new Int32Array(n), fresh = new Uint8Array(n);
  const union = new Uint8Array(bytes);
  let k = 0;
  passes.forEach((p, v) => {
    union.fill(0);
    for (let r = p.firstRow; r < p.firstRow + p.rows; r++) {
      const base = r * h.rowBytes + at;
      for (let b = 0; b < bytes; b++) union[b]! |= t.bits[base + b]!;
    }
    if (k + width > channels.length) {
      const grown = new Int32Array(channels.length * 2 + width);
      grown.set(channels);
      channels = grown;
    }
    for (let b = 0; b < bytes; b++) {
      let x = union[b]!;
      while (x) {
        const bit = 31 - Math.clz32(x & -x);
        channels[k++] = b * 8 + bit;
        x &= x - 1;
      }
    }
    offsets[v + 1] = k;
    rows[v] = p.rows;
    decode[v] = p.decode ? 1 : 0;
    sequence[v] = p.sequence;
    fresh[v] = p.fresh ? 1 : 0;
  });
  return { offsets, channels: channels.slice(0, k), rows, decode, sequence, fresh, count: n };
}

// Rows in which each channel of (layer, site) was active.
export function channelCounts(t: Trace, layer: number, site: number): Float64Array {
  const h = t.header;
  const { at, bytes } = siteSpan(h, layer, site);
  const counts = new Float64Array(h.widths[site]!);
  for (let r = 0; r < h.rows; r++) {
    const base = r * h.rowBytes + at;
    for (let b = 0; b < bytes; b++) {
      let x = t.bits[base + b]!;
      while (x) {
        counts[b * 8 + 31 - Math.clz32(x & -x)]!++;
        x &= x - 1;
      }
    }
  }
  return counts;
}

// Channels by descending count (ties: lower channel first).
export function rankByCount(counts: Float64Array): Int32Array {
  const idx = Int32Array.from({ length: counts.length }, (_, i) => i);
  return idx.sort((a, b) => counts[b]! - counts[a]! || a - b);
}
