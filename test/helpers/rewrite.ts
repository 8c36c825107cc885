// Copies of a GGUF with some tensors changed, for tests: F32 twins of quantised models, and
// files with a tensor of the wrong shape or an extra tensor.
import { readFile } from "node:fs/promises";
import { loadAddon } from "../../src/backends/native/binding.js";
import { readTypedMetadata } from "../../src/flash/typedMetadata.js";
import { readGguf } from "../../src/gguf/reader.js";
import { GgmlType } from "../../src/gguf/types.js";
import { GgufWriter } from "../../src/gguf/writer.js";

export interface TensorData {
  name: string;
  dims: number[];
  type: number;
  data: Uint8Array;
}

// The source's metadata and tensors, each passed through `edit` (undefined drops it), then `add`.
export async function rewriteGguf(
  srcPath: string, outPath: string, edit: (t: TensorData) => TensorData | undefined, add: readonly TensorData[] = [],
): Promise<void> {
  const src = await readGguf(srcPath);
  const bytes = await readFile(srcPath);
  const w = new GgufWriter(outPath);
  for (const [k, v] of await readTypedMetadata(src)) w.set(k, v);
  const out: TensorData[] = [];
  for (const t of src.tensors) {
    const data = bytes.subarray(src.dataOffset + t.offset, src.dataOffset + t.offset + t.bytes);
    const e = edit({ name: t.name, dims: [...t.dims], type: t.type, data });
    if (e) out.push(e);
  }
  out.push(...add);
  for (const t of out) w.addTensor({ name: t.name, dims: t.dims, type: t.type });
  const byName = new Map(out.map((t) => [t.name, t.data]));
  await w.write((t) => byName.get(t.name)!);
}

// A copy whose tensors chosen by `toF32` are F32 holding the source's dequantised values; every
// other tensor is byte-identical. The dense engine computes F32 weights with float activations,
// as the column kernels do (quantised weights get 8-bit activations).
export async function rewriteF32(srcPath: string, outPath: string, toF32: (name: string) => boolean): Promise<void> {
  const addon = loadAddon();
  await rewriteGguf(srcPath, outPath, (t) => {
    if (!toF32(t.name) || t.type === GgmlType.F32) return t;
    const x = addon.dequantizeRow(t.type, t.data, t.dims.reduce((a, b) => a * b, 1));
    return { ...t, type: GgmlType.F32, data: new Uint8Array(x.buffer, x.byteOffset, x.byteLength) };
  });
}
