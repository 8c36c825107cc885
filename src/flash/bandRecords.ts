// Column records built a band of input channels at a time, shared by the dense extents
// (convert.ts) and the experts' (convertExperts.ts): each source tensor's band is either split
// straight into the records (split layout) or dequantised, transposed and requantised.
import type { ConversionKernels } from "../backend/Backend.js";
import { TYPE_LAYOUT, type GgufTensorInfo } from "../gguf/types.js";

// Input channels per band: a multiple of every block size (32, 256); ~10 MB of floats
// per tensor at n_out = 11008.
export const BAND = 256;

// One tensor's place in a record: its rows, offset and bytes per channel, and its column type.
export interface BandPart { nOut: number; offset: number; bytes: number; type: number }

export interface BandSinks {
  hasher: { update(b: Uint8Array): void; finish(): void };
  // The requantised columns against the floats they came from (relative RMS error).
  addError(ref: Float32Array, got: Float32Array): void;
  throwIfAborted(): void;
}

// dst[jb * rows + r] = src[r * cols + jb]: rows x cols to cols x rows, in tiles for the cache.
function transpose(src: Float32Array, dst: Float32Array, rows: number, cols: number): void {
  const T = 32;
  for (let r0 = 0; r0 < rows; r0 += T) {
    const r1 = Math.min(r0 + T, rows);
    for (let c0 = 0; c0 < cols; c0 += T) {
      const c1 = Math.min(c0 + T, cols);
      for (let r = r0; r < r1; r++) {
        const s = r * cols;
        for (let c = c0; c < c1; c++) dst[c * rows + r] = src[s + c]!;
      }
    }
  }
}

// Columns j0..j0+nb of one source tensor (nOut rows of type info.type in `bytes`) as floats,
// column-major: the result's [jb * nOut + r] is W[r][j0 + jb]. Uses the scratch buffers.
function bandColumns(
  addon: ConversionKernels, info: GgufTensorInfo, bytes: Uint8Array, nOut: number, j0: number, nb: number, gathered: Uint8Array, cols: Float32Array,
): Float32Array {
  const [blk, bb] = TYPE_LAYOUT[info.type]!;
  const srcRow = (info.dims[0]! / blk) * bb;
  const slice = (nb / blk) * bb;
  const sliceAt = (j0 / blk) * bb;
  // The band's slice of every source row, side by side: an nOut x nb matrix of source blocks.
  for (let r = 0; r < nOut; r++) {
    gathered.set(bytes.subarray(r * srcRow + sliceAt, r * srcRow + sliceAt + slice), r * slice);
  }
  const rowsMajor = addon.dequantizeRow(info.type, gathered.subarray(0, nOut * slice), nOut * nb);
  const colsMajor = cols.subarray(0, nb * nOut);
  transpose(rowsMajor, colsMajor, nOut, nb);
  return colsMajor;
}

// The records of nIn input channels (recordBytes each; one source per part, in part order),
// BAND channels per chunk; the chunk buffer is reused, so a consumer writes it before the next.
export async function* bandRecords(
  addon: ConversionKernels, sources: readonly { info: GgufTensorInfo; bytes: Uint8Array }[],
  e: { nIn: number; recordBytes: number; parts: readonly BandPart[] }, columnType: number, split: boolean, sinks: BandSinks,
): AsyncGenerator<Uint8Array> {
  const maxOut = Math.max(...e.parts.map((p) => p.nOut));
  const chunk = new Uint8Array(Math.min(BAND, e.nIn) * e.recordBytes);
  const gathered = new Uint8Array(split ? 0 : maxOut * BAND * 4);
  const cols = new Float32Array(split ? 0 : maxOut * BAND);
  for (let j0 = 0; j0 < e.nIn; j0 += BAND) {
    const nb = Math.min(BAND, e.nIn - j0);
    const out = chunk.subarray(0, nb * e.recordBytes);
    e.parts.forEach((p, k) => {
      const { info, bytes } = sources[k]!;
      if (split) {
        // The source's codes of channels j0 .. j0 + nb - 1, straight into their records.
        addon.colxSplitCodes(p.type, bytes, p.nOut, e.nIn, j0, nb, out, p.offset, e.recordBytes);
        return;
      }
      const colsMajor = bandColumns(addon, info, bytes, p.nOut, j0, nb, gathered, cols);
      const q = addon.quantizeRow(columnType, colsMajor);
      for (let jb = 0; jb < nb; jb++) out.set(q.subarray(jb * p.bytes, (jb + 1) * p.bytes), jb * e.recordBytes + p.offset);
      sinks.addError(colsMajor, addon.dequantizeRow(columnType, q, colsMajor.length));
    });
    sinks.hasher.update(out);
    sinks.throwIfAborted();
    yield out;
  }
  sinks.hasher.finish();
}
