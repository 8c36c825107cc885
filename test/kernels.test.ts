// Native kernel tests, on every ISA path this CPU can run: GGML bit-layout golden cases
// (from gguf-py, test/data/make-kernel-golden.py), quantise/dequantise error per format,
// matvec/matmul against the scalar path (tight) and against a float reference from the
// dequantised weights and the unquantised activation (per-format thresholds, as ggml's
// test-quantize-fns), and the float primitives.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadAddon } from "../src/backends/native/binding.js";
import { GgmlType } from "../src/gguf/types.js";
import { fp16ToFp32, fp32ToFp16 } from "../src/synth/quantize.js";
import { gaussian } from "./helpers/random.js";

const addon = loadAddon();
const defaultIsa = addon.isaName();
const isas = addon.isaAvailable();
after(() => addon.isaSet(defaultIsa));

// Per-format limits. roundTrip: ||deq(q(x)) - x|| / ||x|| on Gaussian rows. vsFloat: max
// |y - y_ref| / (rms ||w_r|| * ||x||), y_ref from the dequantised weights and the float x
// (so it measures the activation quantisation and the kernel). blockElems for shapes.
interface TypeCase {
  name: string;
  type: GgmlType;
  blockElems: number;
  roundTrip: number;
  vsFloat: number;
}
const TYPES: TypeCase[] = [
  { name: "F32", type: GgmlType.F32, blockElems: 1, roundTrip: 0, vsFloat: 1e-6 },
  { name: "F16", type: GgmlType.F16, blockElems: 1, roundTrip: 5e-4, vsFloat: 1e-6 },
  { name: "BF16", type: GgmlType.BF16, blockElems: 1, roundTrip: 4e-3, vsFloat: 1e-6 },
  { name: "Q4_0", type: GgmlType.Q4_0, blockElems: 32, roundTrip: 0.13, vsFloat: 4e-3 },
  { name: "Q4_1", type: GgmlType.Q4_1, blockElems: 32, roundTrip: 0.11, vsFloat: 4e-3 },
  { name: "Q8_0", type: GgmlType.Q8_0, blockElems: 32, roundTrip: 8e-3, vsFloat: 4e-3 },
  { name: "Q4_K", type: GgmlType.Q4_K, blockElems: 256, roundTrip: 0.11, vsFloat: 4e-3 },
  { name: "Q5_K", type: GgmlType.Q5_K, blockElems: 256, roundTrip: 0.055, vsFloat: 4e-3 },
  { name: "Q6_K", type: GgmlType.Q6_K, blockElems: 256, roundTrip: 0.03, vsFloat: 4e-3 },
];
// SIMD against scalar: same integer sums, only float summation order differs.
const VS_SCALAR = 2e-6;

function norm(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] as number) ** 2;
  return Math.sqrt(s);
}

// Quantised weight matrix (rows x n) with per-row scales, its dequantised floats, and the
// normaliser rms ||w_r|| used by the error metric.
interface Weights {
  bytes: Uint8Array;
  deq: Float32Array;
  rowNorm: number;
}
function makeWeights(tc: TypeCase, rows: number, n: number, seed: number): Weights {
  const rb = addon.rowBytes(tc.type, n);
  const bytes = new Uint8Array(rb * rows);
  const deq = new Float32Array(rows * n);
  let sumSq = 0;
  for (let r = 0; r < rows; r++) {
    const row = gaussian(n, seed + r, 0.02 * (1 + (r % 5)));
    const q = addon.quantizeRow(tc.type, row);
    assert.equal(q.length, rb);
    bytes.set(q, r * rb);
    const d = addon.dequantizeRow(tc.type, q, n);
    deq.set(d, r * n);
    sumSq += norm(d) ** 2;
  }
  return { bytes, deq, rowNorm: Math.sqrt(sumSq / rows) };
}

function floatRef(w: Weights, rows: number, n: number, x: Float32Array, b = 0): Float64Array {
  const y = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += (w.deq[r * n + i] as number) * (x[b * n + i] as number);
    y[r] = s;
  }
  return y;
}

function maxErr(a: ArrayLike<number>, b: ArrayLike<number>, scale: number): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m / scale;
}

function findData(name: string): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    const p = join(dir, "test", "data", name);
    if (existsSync(p)) return p;
    const q = join(dir, "data", name);
    if (existsSync(q)) return q;
    dir = dirname(dir);
  }
  throw new Error(`test data ${name} not found above ${fileURLToPath(import.meta.url)}`);
}

function findFileUp(rel: string): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, rel))) return join(dir, rel);
    dir = dirname(dir);
  }
  throw new Error(`${rel} not found above ${fileURLToPath(import.meta.url)}`);
}

function hexBytes(hex: string): Uint8Array {
  return Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16));
}

test("ISA paths: scalar always available, current one listed, unknown path rejected", () => {
  assert.ok(isas.includes("scalar"), `isaAvailable() = ${isas.join(",")}`);
  assert.ok(isas.includes(defaultIsa), `isaName() = ${defaultIsa} not in ${isas.join(",")}`);
  for (const isa of isas) {
    addon.isaSet(isa);
    assert.equal(addon.isaName(), isa);
  }
  addon.isaSet(defaultIsa);
  assert.throws(() => addon.isaSet("neon9000"), (e: Error & { code?: string }) => {
    return e.code === "NATIVE" && /neon9000/.test(e.message);
  });
});

test("ACTIVEFLOW_ISA forces a path at load; an unknown one fails naming the value", () => {
  const addonPath = findFileUp(join("build", "Release", "activeflow.node"));
  const load = (isa: string) =>
    spawnSync(process.execPath, ["-e", `console.log(require(${JSON.stringify(addonPath)}).isaName())`], {
      env: { ...process.env, ACTIVEFLOW_ISA: isa },
      encoding: "utf8",
    });
  for (const isa of isas) {
    const r = load(isa);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), isa);
  }
  const bad = load("sse9");
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /ACTIVEFLOW_ISA=sse9: unknown path, expected scalar\|avx2\|avx512/);
});

test("golden: dequantisation and reference quantisation match ggml (gguf-py)", () => {
  interface Case { kind: string; type: number; n: number; bytes: string; values?: number[]; x?: number[] }
  const data = JSON.parse(readFileSync(findData("kernel-golden.json"), "utf8")) as { cases: Case[] };
  assert.ok(data.cases.length >= 9);
  for (const c of data.cases) {
    const name = TYPES.find((t) => t.type === c.type)?.name ?? String(c.type);
    if (c.kind === "dequantize") {
      const got = addon.dequantizeRow(c.type, hexBytes(c.bytes), c.n);
      const want = c.values ?? [];
      const scale = Math.max(...want.map(Math.abs));
      assert.ok(maxErr(got, want, scale) < 1e-6, `${name}: dequantised values differ from ggml`);
    } else {
      const got = addon.quantizeRow(c.type, Float32Array.from(c.x ?? []));
      assert.deepEqual(Buffer.from(got).toString("hex"), c.bytes, `${name}: quantised bytes differ from ggml`);
    }
  }
});

test("quantise/dequantise round-trip error per format", () => {
  for (const tc of TYPES) {
    const n = 1024;
    const x = gaussian(n, 7, 0.05);
    const q = addon.quantizeRow(tc.type, x);
    assert.equal(q.length, addon.rowBytes(tc.type, n), `${tc.name}: row bytes`);
    const d = addon.dequantizeRow(tc.type, q, n);
    const err = norm(d.map((v, i) => v - (x[i] as number))) / norm(x);
    assert.ok(err <= tc.roundTrip, `${tc.name}: round-trip error ${err.toExponential(3)} > ${tc.roundTrip}`);
    // A zero row must survive exactly (no NaN from a zero scale).
    const z = addon.dequantizeRow(tc.type, addon.quantizeRow(tc.type, new Float32Array(n)), n);
    assert.ok(z.every((v) => v === 0), `${tc.name}: zero row did not round-trip to zeros`);
  }
});

// Shapes: odd row counts (tails of the row tiles), one block and several blocks.
const SHAPES = [
  { rows: 1, blocks: 1 },
  { rows: 7, blocks: 3 },
  { rows: 13, blocks: 5 },
];

for (const tc of TYPES) {
  test(`${tc.name}: matvec and matmul on every ISA vs scalar and vs float`, () => {
    for (const [si, shape] of SHAPES.entries()) {
      // Float types still get an odd n so the SIMD kernels' scalar tails run.
      const n = tc.blockElems === 1 ? 32 * shape.blocks + 5 : tc.blockElems * shape.blocks;
      const rows = shape.rows;
      const w = makeWeights(tc, rows, n, 100 * si + 1);
      // 11: an 8-wide tile (AVX-512 Q4_0/Q4_1), a pair and a single, or 4-wide tiles and a tail.
      const nb = 11;
      const X = gaussian(nb * n, 900 + si);
      const xNorm = norm(X.subarray(0, n));
      addon.isaSet("scalar");
      const refVec = addon.matvec(tc.type, w.bytes, rows, n, X.subarray(0, n));
      const refMat = addon.matmul(tc.type, w.bytes, rows, n, X, nb);
      const where = `rows=${rows} n=${n}`;
      const fl = floatRef(w, rows, n, X);
      const e0 = maxErr(refVec, fl, w.rowNorm * xNorm);
      assert.ok(e0 <= tc.vsFloat, `${tc.name} scalar matvec vs float ${where}: ${e0.toExponential(3)} > ${tc.vsFloat}`);
      for (const isa of isas) {
        addon.isaSet(isa);
        const y = addon.matvec(tc.type, w.bytes, rows, n, X.subarray(0, n));
        const es = maxErr(y, refVec, w.rowNorm * xNorm);
        assert.ok(es <= VS_SCALAR, `${tc.name} ${isa} matvec vs scalar ${where}: ${es.toExponential(3)}`);
        const ef = maxErr(y, fl, w.rowNorm * xNorm);
        assert.ok(ef <= tc.vsFloat, `${tc.name} ${isa} matvec vs float ${where}: ${ef.toExponential(3)}`);
        const Y = addon.matmul(tc.type, w.bytes, rows, n, X, nb);
        assert.equal(Y.length, nb * rows);
        for (let b = 0; b < nb; b++) {
          const xb = X.subarray(b * n, (b + 1) * n);
          const scale = w.rowNorm * norm(xb);
          const yb = Y.subarray(b * rows, (b + 1) * rows);
          const em = maxErr(yb, refMat.subarray(b * rows, (b + 1) * rows), scale);
          assert.ok(em <= VS_SCALAR, `${tc.name} ${isa} matmul[${b}] vs scalar ${where}: ${em.toExponential(3)}`);
          const emf = maxErr(yb, floatRef(w, rows, n, X, b), scale);
          assert.ok(emf <= tc.vsFloat, `${tc.name} ${isa} matmul[${b}] vs float ${where}: ${emf.toExponential(3)}`);
        }
      }
      // A row sub-range (as threads split a matrix) gives the same rows as the full call.
      if (rows > 4) {
        const [r0, r1] = [1, rows - 2];
        for (const isa of isas) {
          addon.isaSet(isa);
          const full = addon.matvec(tc.type, w.bytes, rows, n, X.subarray(0, n));
          const part = addon.matvec(tc.type, w.bytes, rows, n, X.subarray(0, n), r0, r1);
          assert.deepEqual(Array.from(part), Array.from(full.subarray(r0, r1)), `${tc.name} ${isa} matvec range`);
          const fullM = addon.matmul(tc.type, w.bytes, rows, n, X, nb);
          const partM = addon.matmul(tc.type, w.bytes, rows, n, X, nb, r0, r1);
          for (let b = 0; b < nb; b++) {
            const em = maxErr(partM.subarray(b * rows + r0, b * rows + r1), fullM.subarray(b * rows + r0, b * rows + r1), 1);
            assert.ok(em <= 1e-6, `${tc.name} ${isa} matmul[${b}] range [${r0}, ${r1}) ${where}`);
            assert.equal(partM[b * rows], 0, `${tc.name} ${isa} matmul wrote outside its range`);
          }
        }
      }
      addon.isaSet(defaultIsa);
    }
  });
}

// The row-packed layout of the dense engine (kernels.h AF_PACK_ROWS = 16): 37 rows are two
// packed groups and a plain tail of 5. Every batch size 1..33 runs every tile width and
// tail tile of the packed kernels (8, 4, 2, 1 activations on AVX-512; 4, 2, 1 on AVX2).
const PACKED = TYPES.filter((t) => [GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q8_0, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K].includes(t.type));
const PACK_ROWS = 37;

for (const tc of PACKED) {
  test(`${tc.name}: packed layout round-trips, and packed matvec/matmul on every ISA match scalar for batches 1..33`, () => {
    const n = tc.blockElems * (tc.blockElems === 32 ? 7 : 2);
    const rows = PACK_ROWS;
    const w = makeWeights(tc, rows, n, 4242 + tc.type);
    const rb = addon.rowBytes(tc.type, n);
    const packed = addon.packRows(tc.type, w.bytes, rows, n);
    assert.equal(packed.length, w.bytes.length);
    assert.notDeepEqual(Buffer.from(packed.subarray(0, 16 * rb)), Buffer.from(w.bytes.subarray(0, 16 * rb)), `${tc.name}: groups were not packed`);
    assert.deepEqual(Buffer.from(packed.subarray(32 * rb)), Buffer.from(w.bytes.subarray(32 * rb)), `${tc.name}: the tail rows must stay plain`);
    for (let r = 0; r < rows; r++) {
      const row = addon.unpackRow(tc.type, packed, rows, n, r);
      assert.deepEqual(Buffer.from(row), Buffer.from(w.bytes.subarray(r * rb, (r + 1) * rb)), `${tc.name}: unpackRow(${r})`);
    }
    const maxNb = 33;
    const X = gaussian(maxNb * n, 77 + tc.type);
    addon.isaSet("scalar");
    const ref = addon.matmul(tc.type, w.bytes, rows, n, X, maxNb);
    for (const isa of isas) {
      addon.isaSet(isa);
      for (let nb = 1; nb <= maxNb; nb++) {
        const x = X.subarray(0, nb * n);
        const Y = nb === 1 ? addon.matvecPacked(tc.type, packed, rows, n, x) : addon.matmulPacked(tc.type, packed, rows, n, x, nb);
        assert.equal(Y.length, nb * rows);
        for (let b = 0; b < nb; b++) {
          const scale = w.rowNorm * norm(X.subarray(b * n, (b + 1) * n));
          const e = maxErr(Y.subarray(b * rows, (b + 1) * rows), ref.subarray(b * rows, (b + 1) * rows), scale);
          assert.ok(e <= VS_SCALAR, `${tc.name} ${isa} packed nb=${nb} [${b}] vs scalar: ${e.toExponential(3)}`);
        }
      }
      // Ranges that cut groups (as a thread's share may) give the same rows as the full call.
      const full = addon.matmulPacked(tc.type, packed, rows, n, X.subarray(0, 3 * n), 3);
      const fullV = addon.matvecPacked(tc.type, packed, rows, n, X.subarray(0, n));
      for (const [r0, r1] of [[0, 16], [3, 35], [16, 37], [20, 22], [33, 37]] as const) {
        const part = addon.matmulPacked(tc.type, packed, rows, n, X.subarray(0, 3 * n), 3, r0, r1);
        for (let b = 0; b < 3; b++) {
          const e = maxErr(part.subarray(b * rows + r0, b * rows + r1), full.subarray(b * rows + r0, b * rows + r1), 1);
          assert.ok(e <= 1e-6, `${tc.name} ${isa} matmulPacked[${b}] range [${r0}, ${r1})`);
          if (r0 > 0) assert.equal(part[b * rows + r0 - 1], 0, `${tc.name} ${isa} matmulPacked wrote before its range`);
          if (r1 < rows) assert.equal(part[b * rows + r1], 0, `${tc.name} ${isa} matmulPacked wrote past its range`);
        }
        const v = addon.matvecPacked(tc.type, packed, rows, n, X.subarray(0, n), r0, r1);
        assert.deepEqual(Array.from(v), Array.from(fullV.subarray(r0, r1)), `${tc.name} ${isa} matvecPacked range [${r0}, ${r1})`);
      }
    }
    addon.isaSet(defaultIsa);
  });
}

test("activation quantisers give the scalar path's bytes on every ISA, rounding ties as it does", () => {
  const n = 512;
  const x = gaussian(n, 31, 3);
  // Block maxima of 127 make the scale 1, so k + 0.5 is an exact tie: Q8_1 rounds ties away
  // from zero (roundf), Q8_K to even (lrintf).
  for (let b = 0; b < n; b += 32) {
    x[b] = 127;
    for (let k = 1; k < 12; k++) x[b + k] = (k % 2 ? -1 : 1) * (k + 0.5);
  }
  for (const type of [GgmlType.Q4_0, GgmlType.Q4_K]) {
    addon.isaSet("scalar");
    const ref = addon.quantizeAct(type, x);
    for (const isa of isas) {
      addon.isaSet(isa);
      assert.deepEqual(Buffer.from(addon.quantizeAct(type, x)), Buffer.from(ref), `type ${type} on ${isa}`);
    }
  }
  addon.isaSet(defaultIsa);
});

test("packRows rejects a type without a packed layout, naming it", () => {
  assert.throws(
    () => addon.packRows(GgmlType.F16, new Uint8Array(64 * 2 * 16), 16, 64),
    (e: Error & { code?: string }) => e.code === "BAD_ARGUMENT" && /type 1 has no packed layout/.test(e.message),
  );
});

test("memoryBandwidth measures a positive rate", () => {
  const bw = addon.memoryBandwidth(1 << 20, 1, 1);
  assert.ok(bw > 1e8 && Number.isFinite(bw), `memoryBandwidth = ${bw}`);
});

// ggml's CPU GeGLU (vec.h, GGML_GELU_FP16): the tanh GELU of the f16-rounded input, in float
// operations in C's order, rounded to f16, exact outside [-10, 10]. Only tanhf itself is
// taken from float64 here, so an f16 rounding boundary may still land one f16 step away.
function geluMulRef(g: number, u: number): number {
  const f = Math.fround;
  if (g <= -10) return f(0);
  if (g >= 10) return f(g * u);
  const x = fp16ToFp32(fp32ToFp16(g));
  const z = f(f(f(0.7978845608028654) * x) * f(1 + f(f(f(0.044715) * x) * x)));
  const gelu = f(f(0.5 * x) * f(1 + f(Math.tanh(z))));
  return f(fp16ToFp32(fp32ToFp16(gelu)) * u);
}

test("geluMul on every ISA: ggml's f16-table GELU, identical across paths", () => {
  const n = 4096;
  // Gates spread over [-12, 12] so both clamps and the table are hit; ups near 1.
  const gate = gaussian(n, 77).map((v) => v * 5);
  gate[0] = -10; gate[1] = 10; gate[2] = -10.5; gate[3] = 11.25; gate[4] = 0; gate[5] = -0;
  const up = gaussian(n, 78).map((v) => 1 + 0.1 * v);
  addon.isaSet("scalar");
  const scalar = addon.geluMul(gate, up);
  let off = 0;
  for (let i = 0; i < n; i++) {
    const want = geluMulRef(gate[i]!, up[i]!);
    const got = scalar[i]!;
    if (got === want) continue;
    // One f16 step of the GELU value, times up: a rounding-boundary case.
    const step = Math.abs(up[i]!) * 2 ** (Math.floor(Math.log2(Math.abs(want / up[i]!) || 2 ** -24)) - 10);
    assert.ok(Math.abs(got - want) <= step * 1.01, `geluMul(${gate[i]}, ${up[i]}) = ${got}, want ${want}`);
    off++;
  }
  assert.ok(off <= n / 100, `${off} of ${n} values off by an f16 step`);
  assert.equal(scalar[0], 0, "gelu(-10) is clamped to 0");
  assert.equal(scalar[1], Math.fround(10 * up[1]!), "gelu(10) = 10");
  assert.equal(scalar[2], 0);
  assert.equal(scalar[3], Math.fround(11.25 * up[3]!));
  assert.equal(scalar[4], 0);
  for (const isa of isas) {
    addon.isaSet(isa);
    assert.deepEqual(addon.geluMul(gate, up), scalar, `geluMul on ${isa} differs from scalar`);
  }
  addon.isaSet(defaultIsa);
  assert.throws(() => addon.geluMul(gate, up.subarray(1)), /geluMul/);
});

test("float primitives on every ISA match a float64 reference", () => {
  for (const isa of isas) {
    addon.isaSet(isa);
    for (const n of [1, 7, 37, 1000]) {
      const a = gaussian(n, n), b = gaussian(n, n + 1);
      const tag = `${isa} n=${n}`;
      let dot = 0;
      for (let i = 0; i < n; i++) dot += (a[i] as number) * (b[i] as number);
      assert.ok(Math.abs(addon.dotF32(a, b) - dot) <= 1e-5 * norm(a) * norm(b), `dotF32 ${tag}`);

      const ax = addon.axpyF32(0.5, a, b);
      assert.ok(maxErr(ax, b.map((v, i) => v + 0.5 * (a[i] as number)), 1) < 1e-6, `axpyF32 ${tag}`);
      assert.ok(maxErr(addon.scaleF32(-3, a), a.map((v) => -3 * v), 1) < 1e-5, `scaleF32 ${tag}`);

      const eps = 1e-5;
      const inv = 1 / Math.sqrt(norm(a) ** 2 / n + eps);
      const rn = addon.rmsnorm(a, b, eps);
      assert.ok(maxErr(rn, a.map((v, i) => v * inv * (b[i] as number)), 1) < 1e-5, `rmsnorm ${tag}`);

      const sm = addon.siluMul(a, b);
      const smRef = a.map((g, i) => (g / (1 + Math.exp(-g))) * (b[i] as number));
      assert.ok(maxErr(sm, smRef, 1) < 1e-5, `siluMul ${tag}`);

      const big = a.map((v) => v * 30);  // large logits: must be max-subtracted
      const mx = Math.max(...big);
      const ex = Array.from(big, (v) => Math.exp(v - mx));
      const sum = ex.reduce((s, v) => s + v, 0);
      const sf = addon.softmax(big);
      assert.ok(maxErr(sf, ex.map((v) => v / sum), 1) < 1e-6, `softmax ${tag}`);
      assert.ok(Math.abs(sf.reduce((s, v) => s + v, 0) - 1) < 1e-5, `softmax sums to 1 ${tag}`);
    }
  }
  addon.isaSet(defaultIsa);
});

test("bad arguments throw BAD_ARGUMENT naming the problem", () => {
  const bad = (fn: () => unknown, re: RegExp): void => {
    assert.throws(fn, (e: Error & { code?: string }) => e.code === "BAD_ARGUMENT" && re.test(e.message));
  };
  const x = new Float32Array(64);
  bad(() => addon.quantizeRow(9, x), /type 9 is not a supported weight type/);
  bad(() => addon.quantizeRow(GgmlType.Q4_K, x), /n = 64 must be a positive multiple of the block size 256/);
  bad(() => addon.dequantizeRow(GgmlType.Q8_0, new Uint8Array(10), 32), /need 34 bytes, got 10/);
  bad(() => addon.matvec(GgmlType.Q4_0, new Uint8Array(36), 3, 64, x), /w holds 36 bytes, 3 rows of 64 need 108/);
  bad(() => addon.matvec(GgmlType.Q4_0, new Uint8Array(108), 3, 64, new Float32Array(63)), /x has 63 elements, expected 64/);
  bad(() => addon.matmul(GgmlType.F32, new Uint8Array(256), 1, 64, x, 2), /x has 64 elements, expected 128/);
  bad(() => addon.matvec(GgmlType.F32, new Uint8Array(256), 0, 64, x), /'rows' must be a positive integer/);
  bad(() => addon.dotF32(x, new Float32Array(3)), /arrays differ in length/);
  bad(() => addon.matvec(GgmlType.F32, new Uint8Array(512), 2, 64, x, 1, 3), /row range \[1, 3\) must be non-empty and within \[0, 2\)/);
});
