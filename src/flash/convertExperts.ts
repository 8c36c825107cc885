// The experts of a mixture-of-experts model, converted into their own extents
// (src/flash/experts.ts): which column layout they get, and the bytes of each expert tensor,
// produced from the slices of the source's 3-D expert tensors one expert at a time.
import type { FileHandle } from "node:fs/promises";
import type { ConversionKernels } from "../backend/Backend.js";
import { ActiveflowError } from "../errors.js";
import { findTensor } from "../gguf/reader.js";
import { GgmlType, TYPE_LAYOUT, typeName, type GgufFile, type GgufTensorInfo } from "../gguf/types.js";
import type { MoeConfig } from "../model/moe.js";
import { EXPERT_TENSORS, EXPERT_TYPES_PER_LAYER, SHARED_EXPERT_TENSORS, type ExpertExtentPart, type ExpertLayout, type ExpertShape } from "./experts.js";
import { bandRecords } from "./bandRecords.js";
import { canSplit } from "./format.js";

export interface ExpertConvertOptions {
  columnType?: number;
  fallbackType?: number;
  keepSourceType?: boolean;
}

// Helpers the dense converter owns, passed in so this module does not import it back.
export interface ConvertHelpers {
  readAt(fh: FileHandle, buf: Uint8Array, position: number, path: string): Promise<void>;
  newHasher(firstPage: number): { update(b: Uint8Array): void; finish(): void };
  addError(ref: Float32Array, got: Float32Array): void;
  throwIfAborted(): void;
}

const blockOf = (type: number): number => TYPE_LAYOUT[type]![0];
const bytesPerElem = (type: number): number => TYPE_LAYOUT[type]![1] / TYPE_LAYOUT[type]![0];

// The expert tensor of `layer` named `name` (3-D: [n_in, n_out, n_expert], or 2-D for the
// shared expert), checked against the shape the config gives.
function expertTensor(src: GgufFile, layer: number, name: string, nIn: number, nOut: number, nExpert: number): GgufTensorInfo {
  const full = `blk.${layer}.${name}.weight`;
  const t = findTensor(src, full);
  if (!t) throw new ActiveflowError("MODEL_MISSING_TENSOR", `${src.path}: model has no tensor ${full}`);
  const want = nExpert > 0 ? [nIn, nOut, nExpert] : [nIn, nOut];
  const dims = [...t.dims];
  while (dims.length > want.length && dims[dims.length - 1] === 1) dims.pop();
  if (dims.join() !== want.join()) {
    throw new ActiveflowError("MODEL_BAD_SHAPE", `${src.path}: tensor ${full} has shape [${t.dims.join(", ")}], expected [${want.join(", ")}]`);
  }
  return t;
}

// Where the experts' records go: split when every expert part can be (the source's values
// exactly), else requantised columns by the dense sites' rules (float sources kept, low-bit
// ones in the fallback type unless keepSourceType).
export function expertShapeOf(src: GgufFile, nLayer: number, nEmbd: number, moe: MoeConfig, opts: ExpertConvertOptions): ExpertShape {
  const E = nEmbd, F = moe.nFfExp, S = moe.nFfShexp;
  const types: number[] = [];
  for (let l = 0; l < nLayer; l++) {
    const dims: [number, number][] = [[E, F], [E, F], [F, E]];
    EXPERT_TENSORS.forEach((n, k) => types.push(expertTensor(src, l, n, dims[k]![0], dims[k]![1], moe.nExpert).type));
    const sdims: [number, number][] = [[E, S], [E, S], [S, E]];
    SHARED_EXPERT_TENSORS.forEach((n, k) => types.push(S > 0 ? expertTensor(src, l, n, sdims[k]![0], sdims[k]![1], 0).type : 0));
  }
  const shapeOf = (k: number): [number, number] => {
    const shared = k % EXPERT_TYPES_PER_LAYER >= 3;
    const w = shared ? S : F;
    return k % 3 === 2 ? [w, E] : [E, w];
  };
  const base = { nExpert: moe.nExpert, shared: S > 0, nEmbd: E, nFf: F, nFfShared: S };
  const present = types.filter((t, k) => S > 0 || k % EXPERT_TYPES_PER_LAYER < 3);
  const splittable = types.every((t, k) => (S === 0 && k % EXPERT_TYPES_PER_LAYER >= 3) || canSplit(t, ...shapeOf(k)));
  if (opts.columnType === undefined && opts.keepSourceType !== true && splittable) {
    return { ...base, layout: "split", columnType: GgmlType.I8, partTypes: types };
  }
  const lengths = S > 0 ? [E, F, S] : [E, F];
  const fits = (type: number): boolean => lengths.every((n) => n % blockOf(type) === 0);
  let columnType: number;
  if (opts.columnType !== undefined) {
    columnType = opts.columnType;
    if (!fits(columnType)) {
      throw new ActiveflowError("BAD_ARGUMENT", `column type ${typeName(columnType)} needs column lengths that are multiples of ${blockOf(columnType)}, but the experts have ${lengths.join(", ")}`);
    }
  } else {
    const candidate = [...new Set(present)].sort((a, b) => bytesPerElem(b) - bytesPerElem(a))[0]!;
    const fallback = opts.fallbackType ?? GgmlType.Q8_0;
    const keep = opts.keepSourceType === true || bytesPerElem(candidate) >= 1;
    columnType = keep && fits(candidate) ? candidate : fits(fallback) ? fallback : GgmlType.F16;
  }
  return { ...base, layout: "columns", columnType };
}

// The source slice of one part of expert x (shared: the 2-D tensor), read whole.
async function readPart(fh: FileHandle, src: GgufFile, h: ConvertHelpers, x: ExpertLayout, shape: ExpertShape, k: number): Promise<{ info: GgufTensorInfo; bytes: Uint8Array }> {
  const shared = x.expert === shape.nExpert;
  const name = (shared ? SHARED_EXPERT_TENSORS : EXPERT_TENSORS)[k]!;
  const info = findTensor(src, `blk.${x.layer}.${name}.weight`)!;
  const [nIn, nOut] = [info.dims[0]!, info.dims[1]!];
  const slice = (nIn / TYPE_LAYOUT[info.type]![0]) * TYPE_LAYOUT[info.type]![1] * nOut;
  const bytes = new Uint8Array(slice);
  await h.readAt(fh, bytes, src.dataOffset + info.offset + (shared ? 0 : x.expert * slice), src.path);
  h.throwIfAborted();
  // A 2-D view of the slice, for the band and split helpers.
  return { info: { ...info, dims: [nIn, nOut], offset: 0, bytes: slice }, bytes };
}

// Records of one expert extent (ffn_in: parts gate, up; ffn_out: down), in bands of channels.
async function* expertRecords(
  addon: ConversionKernels, fh: FileHandle, src: GgufFile, h: ConvertHelpers, x: ExpertLayout, shape: ExpertShape, which: "in" | "out",
): AsyncGenerator<Uint8Array> {
  const e: ExpertExtentPart = x[which];
  const sources: { info: GgufTensorInfo; bytes: Uint8Array }[] = [];
  for (const k of which === "in" ? [0, 1] : [2]) sources.push(await readPart(fh, src, h, x, shape, k));
  yield* bandRecords(addon, sources, e, shape.columnType, shape.layout === "split", { hasher: h.newHasher(e.firstPage), addError: h.addError, throwIfAborted: h.throwIfAborted });
}

// The split scale planes of one expert (gate, up, down) in one buffer.
async function expertScales(addon: ConversionKernels, fh: FileHandle, src: GgufFile, h: ConvertHelpers, x: ExpertLayout, shape: ExpertShape): Promise<Uint8Array> {
  const s = x.scales!;
  const buf = new Uint8Array(s.bytes);
  for (let k = 0; k < 3; k++) {
    const { info, bytes } = await readPart(fh, src, h, x, shape, k);
    buf.set(addon.colxSplitScales(info.type, bytes, info.dims[1]!, info.dims[0]!), s.planeOffsets[k]!);
  }
  const hasher = h.newHasher(s.firstPage);
  hasher.update(buf);
  hasher.finish();
  return buf;
}

// The data of expert tensor `i` (file order: each expert's ffn_in, ffn_out, then scales).
export function expertTensorData(
  addon: ConversionKernels, fh: FileHandle, src: GgufFile, h: ConvertHelpers, experts: readonly ExpertLayout[], shape: ExpertShape, i: number,
): AsyncIterable<Uint8Array> {
  const per = shape.layout === "split" ? 3 : 2;
  const x = experts[Math.floor(i / per)]!;
  const k = i % per;
  if (k === 0) return expertRecords(addon, fh, src, h, x, shape, "in");
  if (k === 1) return expertRecords(addon, fh, src, h, x, shape, "out");
  return (async function* () {
    yield await expertScales(addon, fh, src, h, x, shape);
  })();
}
