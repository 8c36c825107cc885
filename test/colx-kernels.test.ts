// Split columns (activeflow/colx_kernels.h): the converter's split of a Q4_0 / Q4_1 / Q8_0
// matrix rebuilds the source's dequantised values bit for bit from codes + scale plane (read
// here from the documented layout, not through the kernel), and the gather-axpy on every ISA
// path this CPU can run agrees with a float64 reference, bitwise across paths, bitwise when
// the channel list is cut at block-column boundaries or the rows at multiples of 32 / 64, and
// its batch form row by row with single calls (batch sizes 1..33).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { loadAddon } from "../src/backends/native/binding.js";
import { GgmlType } from "../src/gguf/types.js";
import { fp16ToFp32 as halfToFloat } from "../src/synth/quantize.js";
import { gaussian, rng } from "./helpers/random.js";

const addon = loadAddon();
const defaultIsa = addon.isaName();
const isas = addon.isaAvailable();
after(() => addon.isaSet(defaultIsa));

const TYPES = [
  { name: "Q4_0", type: GgmlType.Q4_0 },
  { name: "Q4_1", type: GgmlType.Q4_1 },
  { name: "Q8_0", type: GgmlType.Q8_0 },
];
// 11 tiles of 32 rows (an odd count, so 64-row cuts leave a 32-row tail); 10 block-columns.
const N_OUT = 352;
const N_IN = 320;

interface Split {
  rows: Uint8Array; // the source matrix, nOut rows in the type's blocks
  deq: Float32Array; // dequantizeRow of it, [nOut][nIn]
  codes: Uint8Array[]; // [nIn] per channel
  plane: Uint8Array;
}
function makeSplit(type: number, seed: number, nOut = N_OUT, nIn = N_IN): Split {
  const x = gaussian(nOut * nIn, seed, 0.05);
  // A positive shift on some rows exercises Q4_1's offset.
  for (let r = 0; r < nOut; r += 3) for (let j = 0; j < nIn; j++) x[r * nIn + j] = x[r * nIn + j]! + 0.04;
  const rows = addon.quantizeRow(type, x);
  const deq = addon.dequantizeRow(type, rows, nOut * nIn);
  const plane = addon.colxSplitScales(type, rows, nOut, nIn);
  const cb = addon.colxCodeBytes(type, nOut);
  const all = new Uint8Array(nIn * cb);
  addon.colxSplitCodes(type, rows, nOut, nIn, 0, nIn, all, 0, cb);
  const codes = Array.from({ length: nIn }, (_, j) => all.subarray(j * cb, (j + 1) * cb));
  return { rows, deq, codes, plane };
}

// W[r][j] from the split parts by the layout of docs/FLASH_FORMAT.md section 4, computed as
// the source dequantiser does (d * q, then + m for Q4_1, each rounded to float).
function rebuild(type: number, s: Split, nOut: number, nIn: number): Float32Array {
  const planes = type === GgmlType.Q4_1 ? 2 : 1;
  const half = new Uint16Array(s.plane.buffer, s.plane.byteOffset, s.plane.length / 2);
  const out = new Float32Array(nOut * nIn);
  for (let j = 0; j < nIn; j++) {
    const b = Math.floor(j / 32);
    const c = s.codes[j]!;
    for (let r = 0; r < nOut; r++) {
      let q: number;
      if (type === GgmlType.Q8_0) q = (c[r]! << 24) >> 24;
      else {
        const byte = c[16 * Math.floor(r / 32) + (r % 16)]!;
        q = r % 32 < 16 ? byte & 15 : byte >> 4;
        if (type === GgmlType.Q4_0) q -= 8;
      }
      const d = halfToFloat(half[b * planes * nOut + r]!);
      let v = Math.fround(d * q);
      if (planes === 2) v = Math.fround(v + halfToFloat(half[b * planes * nOut + nOut + r]!));
      out[r * nIn + j] = v;
    }
  }
  return out;
}

function assertBitEqual(got: Float32Array, want: Float32Array, what: string): void {
  const g = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const w = new Uint32Array(want.buffer, want.byteOffset, want.length);
  for (let k = 0; k < w.length; k++) {
    if (g[k] !== w[k]) assert.fail(`${what}: element ${k} is ${got[k]}, expected bitwise ${want[k]}`);
  }
}

// A random ascending subset of [0, nIn) keeping about `keep` of the channels.
function subset(nIn: number, keep: number, seed: number): Int32Array {
  const u = rng(seed);
  const ch: number[] = [];
  for (let j = 0; j < nIn; j++) if (u() < keep) ch.push(j);
  return Int32Array.from(ch);
}

function axpy(type: number, s: Split, ch: Int32Array, a: Float32Array, y0: Float32Array, rows: [number, number][], cuts: number[] = []): Float32Array {
  const y = Float32Array.from(y0);
  const pts = [0, ...cuts, ch.length];
  for (let k = 0; k + 1 < pts.length; k++) {
    const c = ch.subarray(pts[k], pts[k + 1]);
    const codes = [...c].map((j) => s.codes[j]!);
    for (const [e0, e1] of rows) addon.colxAxpy(type, codes, c, a.subarray(pts[k], pts[k + 1]), s.plane, N_OUT, y, e0, e1);
  }
  return y;
}

for (const tc of TYPES) {
  test(`colx split ${tc.name}: codes + scale plane rebuild the source's dequantised values bit for bit`, () => {
    for (const [nOut, nIn] of [[N_OUT, N_IN], [32, 32], [64, 96]] as const) {
      const s = makeSplit(tc.type, 3 + nOut, nOut, nIn);
      assertBitEqual(rebuild(tc.type, s, nOut, nIn), s.deq, `${tc.name} ${nOut}x${nIn}`);
      // Bytes: source = codes + plane exactly.
      assert.equal(s.codes.length * s.codes[0]!.length + s.plane.length, s.rows.length);
    }
    // A band of channels written at an offset and stride equals the same channels of the whole.
    const s = makeSplit(tc.type, 77);
    const cb = addon.colxCodeBytes(tc.type, N_OUT);
    const band = new Uint8Array(5 + 40 * (cb + 3));
    addon.colxSplitCodes(tc.type, s.rows, N_OUT, N_IN, 37, 40, band, 5, cb + 3);
    for (let k = 0; k < 40; k++) assert.deepEqual(band.subarray(5 + k * (cb + 3), 5 + k * (cb + 3) + cb), s.codes[37 + k]);
  });

  test(`colxAxpy ${tc.name}: float reference, ISA agreement, chunk and row-split determinism`, () => {
    const s = makeSplit(tc.type, 11 + tc.type);
    for (const [keep, seed] of [[0.5, 1], [0.1, 2], [1, 3], [0.9, 4], [0.02, 5]] as const) {
      const ch = subset(N_IN, keep, seed * 17 + tc.type);
      if (ch.length === 0) continue;
      const a = gaussian(ch.length, 100 + seed);
      const y0 = gaussian(N_OUT, 200 + seed, 0.1);
      const what = `${tc.name} keep=${keep} (${ch.length} channels)`;
      // Cut points at block-column boundaries: before every channel whose block-column differs.
      const bounds: number[] = [];
      for (let i = 1; i < ch.length; i++) if (ch[i]! >> 5 !== ch[i - 1]! >> 5) bounds.push(i);
      const cuts = bounds.filter((_, k) => k % 3 === 1);
      let first: Float32Array | undefined;
      for (const isa of isas) {
        addon.isaSet(isa);
        const y = axpy(tc.type, s, ch, a, y0, [[0, N_OUT]]);
        for (let e = 0; e < N_OUT; e++) {
          let ref = y0[e]!;
          let bound = Math.abs(ref);
          for (let i = 0; i < ch.length; i++) {
            const t = a[i]! * s.deq[e * N_IN + ch[i]!]!;
            ref += t;
            bound += Math.abs(t);
          }
          const err = Math.abs(y[e]! - ref);
          if (!(err <= 2e-6 * bound)) assert.fail(`${what} ${isa}: row ${e} is ${y[e]}, reference ${ref} (error ${err}, bound ${bound})`);
        }
        if (first) assertBitEqual(y, first, `${what}: ${isa} against ${isas[0]}`);
        else first = y;
        assertBitEqual(axpy(tc.type, s, ch, a, y0, [[0, N_OUT]], cuts), y, `${what} ${isa}: channel chunks cut at ${cuts.join(",")}`);
        assertBitEqual(axpy(tc.type, s, ch, a, y0, [[0, N_OUT]], bounds), y, `${what} ${isa}: one chunk per block-column`);
        assertBitEqual(axpy(tc.type, s, ch, a, y0, [[0, 128], [128, 320], [320, N_OUT]]), y, `${what} ${isa}: rows cut at 128, 320`);
        assertBitEqual(axpy(tc.type, s, ch, a, y0, [[0, 32], [32, 96], [96, N_OUT]]), y, `${what} ${isa}: rows cut at 32, 96`);
        // A row range leaves the rows outside it untouched.
        const part = axpy(tc.type, s, ch, a, y0, [[64, 192]]);
        for (let e = 0; e < N_OUT; e++) {
          const want = e >= 64 && e < 192 ? y[e]! : y0[e]!;
          if (part[e] !== want) assert.fail(`${what} ${isa}: rows [64, 192): row ${e} is ${part[e]}, expected ${want}`);
        }
      }
    }
    addon.isaSet(defaultIsa);
  });

  test(`colxAxpyBatch ${tc.name}: batch sizes 1..33, each row bitwise equal to a single call`, () => {
    const s = makeSplit(tc.type, 21 + tc.type);
    const ch = subset(N_IN, 0.4, 9 + tc.type);
    const codes = [...ch].map((j) => s.codes[j]!);
    const n = ch.length;
    const ldy = N_OUT + 5;
    for (const isa of isas) {
      addon.isaSet(isa);
      for (let nb = 1; nb <= 33; nb++) {
        const a = gaussian(nb * n, 300 + nb);
        // Some rows have zeros where others are active (a channel is active in any row).
        for (let k = 0; k < a.length; k += 7) a[k] = 0;
        const y0 = gaussian(nb * ldy, 400 + nb, 0.1);
        const y = Float32Array.from(y0);
        const e0 = nb % 2 === 0 ? 0 : 64;
        addon.colxAxpyBatch(tc.type, codes, ch, a, s.plane, N_OUT, nb, y, ldy, e0, N_OUT);
        for (let b = 0; b < nb; b++) {
          const want = Float32Array.from(y0.subarray(b * ldy, (b + 1) * ldy));
          addon.colxAxpy(tc.type, codes, ch, a.subarray(b * n, (b + 1) * n), s.plane, N_OUT, want, e0, N_OUT);
          assertBitEqual(y.subarray(b * ldy, (b + 1) * ldy), want, `${tc.name} ${isa} nb=${nb} row ${b}`);
        }
      }
    }
    addon.isaSet(defaultIsa);
  });
}

test("colx entry points reject bad arguments with BAD_ARGUMENT", () => {
  const s = makeSplit(GgmlType.Q4_0, 5);
  const ch = Int32Array.from([1, 40]);
  const codes = [s.codes[1]!, s.codes[40]!];
  const a = new Float32Array(2);
  const y = new Float32Array(N_OUT);
  const bad = (fn: () => void, msg: RegExp): void => {
    assert.throws(fn, (e: unknown) => (e as { code?: string }).code === "BAD_ARGUMENT" && msg.test((e as Error).message), msg.source);
  };
  const q = GgmlType.Q4_0;
  bad(() => addon.colxAxpy(GgmlType.Q4_K, codes, ch, a, s.plane, N_OUT, y, 0, 32), /type 12 has no split columns/);
  bad(() => addon.colxAxpy(q, codes, ch, a, s.plane, 100, y, 0, 32), /nOut = 100 must be a multiple of 32/);
  bad(() => addon.colxAxpy(q, codes, ch, a, s.plane, N_OUT, y, 16, 64), /must lie in \[0, nOut = 352\] and start and end on multiples of 32/);
  bad(() => addon.colxAxpy(q, codes, Int32Array.from([40, 1]), a, s.plane, N_OUT, y, 0, 32), /ch\[1\] = 1 must be above the channel before it/);
  bad(() => addon.colxAxpy(q, codes, Int32Array.from([1, 320]), a, s.plane, N_OUT, y, 0, 32), /below the scale plane's 320 channels/);
  bad(() => addon.colxAxpy(q, [codes[0]!], ch, a, s.plane, N_OUT, y, 0, 32), /1 code arrays but 2 channel ids/);
  bad(() => addon.colxAxpy(q, [codes[0]!, new Uint8Array(10)], ch, a, s.plane, N_OUT, y, 0, 32), /codes\[1\] holds 10 bytes, 352 rows need 176/);
  bad(() => addon.colxAxpy(q, codes, ch, new Float32Array(3), s.plane, N_OUT, y, 0, 32), /a has 3 values for 2 channels/);
  bad(() => addon.colxAxpy(q, codes, ch, a, s.plane, N_OUT, new Float32Array(32), 0, 64), /e1 = 64 is past y/);
  bad(() => addon.colxAxpyBatch(q, codes, ch, a, s.plane, N_OUT, 2, new Float32Array(2 * N_OUT), N_OUT, 0, 32), /a has 2 values, expected nb \* channels = 4/);
  bad(() => addon.colxAxpyBatch(q, codes, ch, new Float32Array(4), s.plane, N_OUT, 2, y, N_OUT, 0, 32), /y has 352 elements/);
  bad(() => addon.colxSplitScales(q, s.rows, N_OUT, 48), /nIn = 48 must be a multiple of 32/);
  bad(() => addon.colxSplitScales(q, s.rows.subarray(0, 100), N_OUT, N_IN), /rows hold 100 bytes/);
  bad(() => addon.colxSplitCodes(q, s.rows, N_OUT, N_IN, 300, 30, new Uint8Array(1 << 16), 0, 176), /channels \[300, 330\) are past nIn = 320/);
  bad(() => addon.colxSplitCodes(q, s.rows, N_OUT, N_IN, 0, 4, new Uint8Array(500), 0, 176), /out holds 500 bytes/);
  bad(() => addon.colxSplitCodes(q, s.rows, N_OUT, N_IN, 0, 4, new Uint8Array(5000), 0, 100), /'stride' must be an integer >= 176/);
});
