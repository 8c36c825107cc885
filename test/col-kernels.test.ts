// Column gather-axpy (af_col_axpy, activeflow/col_kernels.h) on every ISA path this CPU can
// run: against a float64 reference from dequantizeRow, bitwise agreement between the paths
// (they share one per-element summation order), bitwise determinism when [e0, e1) is split
// at block boundaries, the batch form against single calls, and argument errors.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { loadAddon } from "../src/backends/native/binding.js";
import { GgmlType } from "../src/gguf/types.js";
import { gaussian } from "./helpers/random.js";

const addon = loadAddon();
const defaultIsa = addon.isaName();
const isas = addon.isaAvailable();
after(() => addon.isaSet(defaultIsa));

// n: column length used for the type (past one 1024-element chunk of the kernel; the float
// types end in a partial 32-element run). tol: max |y - ref| / (|y0| + sum_i |a_i * col_i|)
// per element; the kernel's only error is float rounding of a * d, the FMAs and the adds.
interface TypeCase {
  name: string;
  type: GgmlType;
  blockElems: number;
  n: number;
  tol: number;
}
const TYPES: TypeCase[] = [
  { name: "F32", type: GgmlType.F32, blockElems: 1, n: 1100, tol: 4e-6 },
  { name: "F16", type: GgmlType.F16, blockElems: 1, n: 1100, tol: 4e-6 },
  { name: "BF16", type: GgmlType.BF16, blockElems: 1, n: 1100, tol: 4e-6 },
  { name: "Q4_0", type: GgmlType.Q4_0, blockElems: 32, n: 1120, tol: 1e-5 },
  { name: "Q4_1", type: GgmlType.Q4_1, blockElems: 32, n: 1120, tol: 1e-5 },
  { name: "Q8_0", type: GgmlType.Q8_0, blockElems: 32, n: 1120, tol: 1e-5 },
  { name: "Q4_K", type: GgmlType.Q4_K, blockElems: 256, n: 1280, tol: 1e-5 },
  { name: "Q5_K", type: GgmlType.Q5_K, blockElems: 256, n: 1280, tol: 1e-5 },
  { name: "Q6_K", type: GgmlType.Q6_K, blockElems: 256, n: 1280, tol: 1e-5 },
];
const N_COLS = [1, 3, 8, 37];

interface Columns {
  bytes: Uint8Array[]; // [nCols], each one quantised column of tc.n elements
  deq: Float32Array[]; // [nCols][tc.n]
}
function makeColumns(tc: TypeCase, nCols: number, seed: number): Columns {
  const bytes: Uint8Array[] = [];
  const deq: Float32Array[] = [];
  for (let i = 0; i < nCols; i++) {
    // A positive shift on some columns exercises the offset (min) of Q4_1 and the K-quants.
    const x = gaussian(tc.n, seed * 1000 + i, 0.05 * (1 + (i % 4)));
    if (i % 3 === 1) for (let k = 0; k < x.length; k++) x[k] = (x[k] as number) + 0.03;
    const q = addon.quantizeRow(tc.type, x);
    bytes.push(q);
    deq.push(addon.dequantizeRow(tc.type, q, tc.n));
  }
  return { bytes, deq };
}

function runAxpy(tc: TypeCase, cols: Uint8Array[], a: Float32Array, y0: Float32Array, ranges: [number, number][]): Float32Array {
  const y = Float32Array.from(y0);
  for (const [e0, e1] of ranges) addon.colAxpy(tc.type, cols, a, y, e0, e1);
  return y;
}

function assertBitEqual(got: Float32Array, want: Float32Array, what: string): void {
  const g = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const w = new Uint32Array(want.buffer, want.byteOffset, want.length);
  for (let k = 0; k < w.length; k++) {
    if (g[k] !== w[k]) assert.fail(`${what}: element ${k} is ${got[k]}, expected bitwise ${want[k]}`);
  }
}

// Random cut points on block boundaries inside [e0, e1).
function split(e0: number, e1: number, blk: number, seed: number): [number, number][] {
  const g = gaussian(8, seed);
  const cuts = new Set<number>();
  for (const v of g) {
    const c = e0 + Math.floor(((Math.abs(v) * 0.37) % 1) * ((e1 - e0) / blk)) * blk;
    if (c > e0 && c < e1) cuts.add(c);
  }
  const pts = [e0, ...[...cuts].sort((x, y) => x - y), e1];
  return pts.slice(1).map((p, k) => [pts[k] as number, p]);
}

for (const tc of TYPES) {
  test(`colAxpy ${tc.name}: float reference, ISA agreement, split determinism`, () => {
    // Quantised types use whole blocks; the ranges cover a start past 0 and an end short of n.
    const blk = Math.max(tc.blockElems, 1);
    const ranges: [number, number][] = [
      [0, tc.n],
      [blk === 1 ? 7 : blk, tc.n - (blk === 1 ? 33 : blk)],
    ];
    for (const nCols of N_COLS) {
      const { bytes, deq } = makeColumns(tc, nCols, nCols + tc.type * 100);
      const a = gaussian(nCols, 7 + nCols);
      const y0 = gaussian(tc.n, 11 + nCols, 0.1);
      for (const [e0, e1] of ranges) {
        const what = `${tc.name} nCols=${nCols} [${e0}, ${e1})`;
        let first: Float32Array | undefined;
        for (const isa of isas) {
          addon.isaSet(isa);
          const y = runAxpy(tc, bytes, a, y0, [[e0, e1]]);
          // Outside the range y is untouched.
          for (let e = 0; e < tc.n; e++) {
            if (e >= e0 && e < e1) continue;
            if (y[e] !== y0[e]) assert.fail(`${what} ${isa}: element ${e} outside the range changed`);
          }
          for (let e = e0; e < e1; e++) {
            let ref = y0[e] as number;
            let bound = Math.abs(ref);
            for (let i = 0; i < nCols; i++) {
              const t = (a[i] as number) * ((deq[i] as Float32Array)[e] as number);
              ref += t;
              bound += Math.abs(t);
            }
            const err = Math.abs((y[e] as number) - ref);
            if (!(err <= tc.tol * bound)) {
              assert.fail(`${what} ${isa}: element ${e} is ${y[e]}, reference ${ref} (error ${err} > ${tc.tol} * ${bound})`);
            }
          }
          if (first) assertBitEqual(y, first, `${what}: ${isa} against ${isas[0]}`);
          else first = y;
          const pieces = split(e0, e1, blk, nCols * 31 + e0);
          assertBitEqual(runAxpy(tc, bytes, a, y0, pieces), y, `${what} ${isa}: split ${JSON.stringify(pieces)}`);
        }
      }
    }
    addon.isaSet(defaultIsa);
  });

  test(`colAxpyBatch ${tc.name}: each row bitwise equal to a single call`, () => {
    const nCols = 37;
    const nb = 37; // past one 32-row tile of the kernel
    const ldy = tc.n + 3;
    const { bytes } = makeColumns(tc, nCols, 99 + tc.type);
    const a = gaussian(nb * nCols, 5);
    const y0 = gaussian(nb * ldy, 6, 0.1);
    const e0 = tc.blockElems === 1 ? 5 : tc.blockElems;
    for (const isa of isas) {
      addon.isaSet(isa);
      const y = Float32Array.from(y0);
      addon.colAxpyBatch(tc.type, bytes, a, nb, y, ldy, e0, tc.n);
      for (let b = 0; b < nb; b++) {
        const want = runAxpy(tc, bytes, a.subarray(b * nCols, (b + 1) * nCols), y0.subarray(b * ldy, (b + 1) * ldy), [[e0, tc.n]]);
        assertBitEqual(y.subarray(b * ldy, (b + 1) * ldy), want, `${tc.name} ${isa} batch row ${b}`);
      }
    }
    addon.isaSet(defaultIsa);
  });
}

test("colAxpy rejects bad arguments with BAD_ARGUMENT", () => {
  const tc = TYPES.find((t) => t.name === "Q4_0") as TypeCase;
  const { bytes } = makeColumns(tc, 2, 1);
  const a = new Float32Array(2);
  const y = new Float32Array(tc.n);
  const bad = (fn: () => void, msg: RegExp): void => {
    assert.throws(fn, (e: unknown) => (e as { code?: string }).code === "BAD_ARGUMENT" && msg.test((e as Error).message));
  };
  bad(() => addon.colAxpy(9, bytes, a, y, 0, 32), /type 9 has no column kernel/);
  bad(() => addon.colAxpy(tc.type, bytes, a, y, 16, 64), /multiple of the block size 32/);
  bad(() => addon.colAxpy(tc.type, bytes, a, y, 0, 48), /multiple of the block size 32/);
  bad(() => addon.colAxpy(tc.type, bytes, new Float32Array(3), y, 0, 32), /2 columns but a has 3 values/);
  bad(() => addon.colAxpy(tc.type, bytes, a, new Float32Array(32), 0, 64), /e1 = 64 is past y/);
  bad(() => addon.colAxpy(tc.type, [bytes[0] as Uint8Array, new Uint8Array(10)], a, y, 0, 32), /cols\[1\] holds 10 bytes/);
  bad(() => addon.colAxpyBatch(tc.type, bytes, a, 2, new Float32Array(2 * tc.n), tc.n, 0, 32), /a has 2 values, expected nb \* cols = 4/);
  bad(() => addon.colAxpyBatch(tc.type, bytes, new Float32Array(4), 2, y, tc.n, 0, 32), /y has 1120 elements/);
});
