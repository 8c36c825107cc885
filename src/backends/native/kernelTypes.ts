// Types of the addon's kernel entry points (native/addon/kernels_binding.cpp).
// Used by kernel tests and tools; the engine itself goes through the model bindings.
// `type` arguments are GGML type ids (GgmlType in src/gguf/types.ts); bad arguments throw
// an Error with code "BAD_ARGUMENT". All calls are synchronous: small inputs only.
import type { ThreadScaling } from "../../backend/probeTypes.js";

export type { ThreadScaling } from "../../backend/probeTypes.js";

export interface KernelBindings {
  // The instruction-set path in use ("scalar" | "avx2" | "avx512").
  isaName(): string;
  // Forces an ISA path ("scalar" | "avx2" | "avx512"); throws (code "NATIVE") if this CPU lacks it.
  isaSet(name: string): void;
  // Paths this CPU can run, e.g. ["scalar", "avx2", "avx512"].
  isaAvailable(): string[];
  // Bytes of one row of n elements of a weight type (n a multiple of its block size).
  rowBytes(type: number, n: number): number;
  // Reference (round-to-nearest) quantisation of one row; x.length a multiple of the block size.
  quantizeRow(type: number, x: Float32Array): Uint8Array;
  // Dequantises n elements of one row.
  dequantizeRow(type: number, bytes: Uint8Array, n: number): Float32Array;
  // Adds the squares of each column of `rows` dequantised rows of n elements to out [n].
  columnSquares(type: number, bytes: Uint8Array, rows: number, n: number, out: Float64Array): void;
  // y[r - r0] = dot(row r of w, x) for r in [r0, r1) of rows rows of n elements; x is
  // quantised to the type's activation partner first, as the engine does. r0, r1 default
  // to 0, rows.
  matvec(type: number, w: Uint8Array, rows: number, n: number, x: Float32Array, r0?: number, r1?: number): Float32Array;
  // Batched form: x holds nb activations of n (batch-major); returns nb * rows, batch-major,
  // with only rows [r0, r1) written (the rest 0).
  matmul(
    type: number, w: Uint8Array, rows: number, n: number, x: Float32Array, nb: number, r0?: number, r1?: number,
  ): Float32Array;
  // x quantised as the activation partner of weight type `type` (the bytes af_quantize_act writes).
  quantizeAct(type: number, x: Float32Array): Uint8Array;
  // A copy of w (rows of n elements) in the row-packed layout the dense engine uses
  // (kernels.h, AF_PACK_ROWS); types Q4_0, Q4_1, Q8_0, Q4_K, Q5_K, Q6_K.
  packRows(type: number, w: Uint8Array, rows: number, n: number): Uint8Array;
  // Row r of a packed tensor, back in the plain layout.
  unpackRow(type: number, packed: Uint8Array, rows: number, n: number, r: number): Uint8Array;
  // matvec / matmul over a packRows() copy (same results as over the plain rows).
  matvecPacked(type: number, packed: Uint8Array, rows: number, n: number, x: Float32Array, r0?: number, r1?: number): Float32Array;
  matmulPacked(
    type: number, packed: Uint8Array, rows: number, n: number, x: Float32Array, nb: number, r0?: number, r1?: number,
  ): Float32Array;
  // Bytes per second of the best of `passes` passes of `threads` threads reading a fresh
  // buffer of `bytes` (the memory-bandwidth probe of bench/dense; blocks the caller).
  memoryBandwidth(bytes: number, threads: number, passes: number): number;
  // The engine's thread pool at 1..maxThreads threads over a packed Q4_0 matrix of about
  // `bytes` (native/addon/threads_binding.cpp): decode (matvec) weight bytes per second and
  // prefill (16-token matmul) multiply-adds per second; about `seconds` in all, off the
  // event loop.
  threadScaling(maxThreads: number, bytes: number, seconds: number): Promise<ThreadScaling[]>;
  dotF32(a: Float32Array, b: Float32Array): number;
  // Returns y + a * x (inputs untouched).
  axpyF32(a: number, x: Float32Array, y: Float32Array): Float32Array;
  // Returns a * y (input untouched).
  scaleF32(a: number, y: Float32Array): Float32Array;
  // x * w / sqrt(mean(x^2) + eps).
  rmsnorm(x: Float32Array, w: Float32Array, eps: number): Float32Array;
  // silu(gate) * up.
  siluMul(gate: Float32Array, up: Float32Array): Float32Array;
  // gelu(gate) * up, tanh approximation through ggml's f16 table (Gemma's GeGLU).
  geluMul(gate: Float32Array, up: Float32Array): Float32Array;
  // Softmax of a copy of x.
  softmax(x: Float32Array): Float32Array;
  // The MoE router for one token (native/model/moe_ffn.h RouteTopK): softmax over all
  // logits (probs), the k most probable experts in descending order, their probabilities
  // divided by their sum when norm.
  moeRoute(logits: Float32Array, k: number, norm: boolean): { experts: Int32Array; weights: Float32Array; probs: Float32Array };
}
