// Reference (round-to-nearest) quantisers for the tiny test models, written to give the
// same bytes as ggml's quantize_row_*_ref: float32 arithmetic via Math.fround, FP16
// scales rounded to nearest even. Dequantisers (also for BF16 and the K-quants) are here so
// tests can compare kernels and files against them.
import { ActiveflowError } from "../errors.js";
import { GgmlType, TYPE_LAYOUT, typeName } from "../gguf/types.js";

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

// IEEE binary16 bits of x, round to nearest even (what F16C's vcvtps2ph does by default).
export function fp32ToFp16(x: number): number {
  f32Scratch[0] = x;
  const bits = u32Scratch[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf / nan
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow to inf
  if (e <= 0) {
    // Subnormal half (or zero): shift the implicit 1 in and round.
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let m = mant >>> shift;
    if (rest > half || (rest === half && (m & 1))) m++;
    return sign | m;
  }
  let m = mant >>> 13;
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (m & 1))) {
    m++;
    if (m === 0x400) {
      m = 0;
      e++;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | m;
}

export function fp16ToFp32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

// ggml's roundf: halves away from zero.
const roundAway = (x: number): number => (x < 0 ? -Math.round(-x) : Math.round(x));
const fr = Math.fround;

// Quantises `x` (length a multiple of the block size) into ggml's bytes for `type`.
export function quantize(type: number, x: Float32Array): Uint8Array {
  const layout = TYPE_LAYOUT[type];
  if (!layout || ![GgmlType.F32, GgmlType.F16, GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q8_0].includes(type)) {
    throw new ActiveflowError("BAD_ARGUMENT", `synth quantiser: type ${typeName(type)} is not implemented (F32, F16, Q4_0, Q4_1, Q8_0 are)`);
  }
  const [qk, blockBytes] = layout;
  if (x.length % qk !== 0) {
    throw new ActiveflowError("BAD_ARGUMENT", `synth quantiser: ${x.length} values is not a multiple of the ${typeName(type)} block size ${qk}`);
  }
  const out = new Uint8Array((x.length / qk) * blockBytes);
  const dv = new DataView(out.buffer);
  if (type === GgmlType.F32) {
    for (let i = 0; i < x.length; i++) dv.setFloat32(i * 4, x[i]!, true);
    return out;
  }
  if (type === GgmlType.F16) {
    for (let i = 0; i < x.length; i++) dv.setUint16(i * 2, fp32ToFp16(x[i]!), true);
    return out;
  }
  for (let b = 0; b < x.length / qk; b++) {
    const xs = x.subarray(b * qk, b * qk + qk);
    const o = b * blockBytes;
    if (type === GgmlType.Q8_0) {
      let amax = 0;
      for (const v of xs) amax = Math.max(amax, Math.abs(v));
      const d = fr(amax / 127);
      const id = d ? fr(1 / d) : 0;
      dv.setUint16(o, fp32ToFp16(d), true);
      for (let j = 0; j < 32; j++) dv.setInt8(o + 2 + j, roundAway(fr(xs[j]! * id)));
    } else if (type === GgmlType.Q4_0) {
      let amax = 0;
      let max = 0;
      for (const v of xs) {
        if (amax < Math.abs(v)) {
          amax = Math.abs(v);
          max = v;
        }
      }
      const d = fr(max / -8);
      const id = d ? fr(1 / d) : 0;
      dv.setUint16(o, fp32ToFp16(d), true);
      for (let j = 0; j < 16; j++) {
        const q0 = Math.min(15, Math.trunc(fr(fr(xs[j]! * id) + 8.5)));
        const q1 = Math.min(15, Math.trunc(fr(fr(xs[16 + j]! * id) + 8.5)));
        out[o + 2 + j] = q0 | (q1 << 4);
      }
    } else {
      let min = Infinity;
      let max = -Infinity;
      for (const v of xs) {
        if (v < min) min = v;
        if (v > max) max = v;
      }
      const d = fr((max - min) / 15);
      const id = d ? fr(1 / d) : 0;
      dv.setUint16(o, fp32ToFp16(d), true);
      dv.setUint16(o + 2, fp32ToFp16(min), true);
      for (let j = 0; j < 16; j++) {
        const q0 = Math.min(15, Math.trunc(fr(fr(fr(xs[j]! - min) * id) + 0.5)));
        const q1 = Math.min(15, Math.trunc(fr(fr(fr(xs[16 + j]! - min) * id) + 0.5)));
        out[o + 4 + j] = q0 | (q1 << 4);
      }
    }
  }
  return out;
}

// The float values `bytes` of `type` stand for (n values).
export function dequantize(type: number, bytes: Uint8Array, n: number): Float32Array {
  const out = new Float32Array(n);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const h = (o: number): number => fp16ToFp32(dv.getUint16(o, true));
  switch (type) {
    case GgmlType.F32:
      for (let i = 0; i < n; i++) out[i] = dv.getFloat32(i * 4, true);
      return out;
    case GgmlType.F16:
      for (let i = 0; i < n; i++) out[i] = h(i * 2);
      return out;
    case GgmlType.Q8_0:
      for (let b = 0; b < n / 32; b++) {
        const d = h(b * 34);
        for (let j = 0; j < 32; j++) out[b * 32 + j] = d * dv.getInt8(b * 34 + 2 + j);
      }
      return out;
    case GgmlType.Q4_0:
      for (let b = 0; b < n / 32; b++) {
        const d = h(b * 18);
        for (let j = 0; j < 16; j++) {
          const q = bytes[b * 18 + 2 + j]!;
          out[b * 32 + j] = ((q & 15) - 8) * d;
          out[b * 32 + 16 + j] = ((q >> 4) - 8) * d;
        }
      }
      return out;
    case GgmlType.Q4_1:
      for (let b = 0; b < n / 32; b++) {
        const d = h(b * 20);
        const m = h(b * 20 + 2);
        for (let j = 0; j < 16; j++) {
          const q = bytes[b * 20 + 4 + j]!;
          out[b * 32 + j] = fr((q & 15) * d + m);
          out[b * 32 + 16 + j] = fr((q >> 4) * d + m);
        }
      }
      return out;
    case GgmlType.BF16:
      for (let i = 0; i < n; i++) {
        u32Scratch[0] = dv.getUint16(i * 2, true) << 16;
        out[i] = f32Scratch[0]!;
      }
      return out;
    case GgmlType.Q4_K:
    case GgmlType.Q5_K:
      dequantizeQ45K(type, bytes, dv, out, n);
      return out;
    case GgmlType.Q6_K:
      dequantizeQ6K(bytes, dv, out, n);
      return out;
    default:
      throw new ActiveflowError("BAD_ARGUMENT", `synth dequantiser: type ${typeName(type)} is not implemented`);
  }
}

// Sub-block j's 6-bit scale and min from the 12 packed bytes at q (ggml get_scale_min_k4).
function scaleMinK4(j: number, b: Uint8Array, q: number): [number, number] {
  if (j < 4) return [b[q + j]! & 63, b[q + j + 4]! & 63];
  return [(b[q + j + 4]! & 0xf) | ((b[q + j - 4]! >> 6) << 4), (b[q + j + 4]! >> 4) | ((b[q + j]! >> 6) << 4)];
}

// Q4_K: half d, half dmin, scales[12], qs[128]. Q5_K adds qh[32] before qs.
function dequantizeQ45K(type: number, b: Uint8Array, dv: DataView, out: Float32Array, n: number): void {
  const five = type === GgmlType.Q5_K;
  const bb = five ? 176 : 144;
  for (let blk = 0; blk < n / 256; blk++) {
    const o = blk * bb;
    const d = fp16ToFp32(dv.getUint16(o, true));
    const dmin = fp16ToFp32(dv.getUint16(o + 2, true));
    const qh = o + 16;
    let qs = five ? o + 48 : o + 16;
    for (let j = 0, is = 0; j < 256; j += 64, is += 2) {
      const [sc1, m1] = scaleMinK4(is, b, o + 4);
      const [sc2, m2] = scaleMinK4(is + 1, b, o + 4);
      const y = blk * 256 + j;
      for (let l = 0; l < 32; l++) {
        const hi1 = five && b[qh + l]! & (1 << is) ? 16 : 0;
        const hi2 = five && b[qh + l]! & (2 << is) ? 16 : 0;
        out[y + l] = fr(fr(d * sc1) * ((b[qs + l]! & 0xf) + hi1) - fr(dmin * m1));
        out[y + 32 + l] = fr(fr(d * sc2) * ((b[qs + l]! >> 4) + hi2) - fr(dmin * m2));
      }
      qs += 32;
    }
  }
}

// Q6_K: ql[128] (low 4 bits), qh[64] (high 2 bits), int8 scales[16], half d.
function dequantizeQ6K(b: Uint8Array, dv: DataView, out: Float32Array, n: number): void {
  for (let blk = 0; blk < n / 256; blk++) {
    const o = blk * 210;
    const d = fp16ToFp32(dv.getUint16(o + 208, true));
    for (let half = 0; half < 2; half++) {
      const ql = o + 64 * half;
      const qh = o + 128 + 32 * half;
      const sc = o + 192 + 8 * half;
      const y = blk * 256 + 128 * half;
      for (let l = 0; l < 32; l++) {
        const is = l >> 4;
        const h = b[qh + l]!;
        const q1 = ((b[ql + l]! & 0xf) | ((h & 3) << 4)) - 32;
        const q2 = ((b[ql + l + 32]! & 0xf) | (((h >> 2) & 3) << 4)) - 32;
        const q3 = ((b[ql + l]! >> 4) | (((h >> 4) & 3) << 4)) - 32;
        const q4 = ((b[ql + l + 32]! >> 4) | (((h >> 6) & 3) << 4)) - 32;
        out[y + l] = fr(d * dv.getInt8(sc + is)) * q1;
        out[y + l + 32] = fr(d * dv.getInt8(sc + is + 2)) * q2;
        out[y + l + 64] = fr(d * dv.getInt8(sc + is + 4)) * q3;
        out[y + l + 96] = fr(d * dv.getInt8(sc + is + 6)) * q4;
      }
    }
  }
}
