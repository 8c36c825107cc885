// Types of the addon's split-column entry points (native/addon/colx_binding.cpp,
// activeflow/colx_kernels.h): a Q4_0 / Q4_1 / Q8_0 matrix kept exactly as per-channel integer
// codes plus a resident scale plane (docs/FLASH_FORMAT.md section 4). Synchronous; bad
// arguments throw an Error with code "BAD_ARGUMENT".
export interface ColxBindings {
  // y[e] += sum_i a[i] * W[e][ch[i]] for e in [e0, e1) (multiples of 32), in place. codes[i]
  // holds channel ch[i]'s codes (nOut rows); ch strictly ascending; scales is the plane.
  colxAxpy(type: number, codes: Uint8Array[], ch: Int32Array, a: Float32Array, scales: Uint8Array, nOut: number,
    y: Float32Array, e0: number, e1: number): void;
  // Batched form: a is [nb][ch.length], y is [nb][ldy]; row b gets exactly what colxAxpy
  // with a's row b would give it.
  colxAxpyBatch(type: number, codes: Uint8Array[], ch: Int32Array, a: Float32Array, scales: Uint8Array, nOut: number,
    nb: number, y: Float32Array, ldy: number, e0: number, e1: number): void;
  // The scale plane of a source matrix (nOut rows of nIn elements in the type's blocks).
  colxSplitScales(type: number, rows: Uint8Array, nOut: number, nIn: number): Uint8Array;
  // Codes of channels j0 .. j0 + nj - 1 of the source matrix, channel j0 + k written at
  // out[offset + k * stride ...].
  colxSplitCodes(type: number, rows: Uint8Array, nOut: number, nIn: number, j0: number, nj: number,
    out: Uint8Array, offset: number, stride: number): void;
  // Bytes of one channel's codes for nOut rows (-1 when nOut is not a multiple of 32).
  colxCodeBytes(type: number, nOut: number): number;
}
