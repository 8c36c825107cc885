// Experts of a mixture-of-experts model in the flash layout (docs/FLASH_FORMAT.md section 13):
// each (layer, expert) is its own extent set, so a token reads only its routed experts. An
// expert's `ffn_in` extent holds one record per input channel of the residual (gate and up
// parts of that channel), its `ffn_out` extent one record per hidden channel (the down part),
// and for split columns its scale planes follow in a third tensor: the three tensors are
// contiguous, so a whole expert is one read. Kept apart from format.ts, which lays out the
// dense sites; computeFlashLayout places these after the dense extents.
import { ActiveflowError } from "../errors.js";
import { GgmlType, typeName } from "../gguf/types.js";
import type { ColumnLayout, RecordPart } from "./format.js";

// Source tensors of one expert kind, in record order: ffn_in holds gate then up, ffn_out down.
export const EXPERT_TENSORS = ["ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"] as const;
export const SHARED_EXPERT_TENSORS = ["ffn_gate_shexp", "ffn_up_shexp", "ffn_down_shexp"] as const;

export const EXPERT_KEY = {
  // u32: routed experts per layer (the model's expert_count).
  count: "activeflow.experts.count",
  // u32: 1 when each layer also has a shared expert (qwen2moe), stored as expert `count`.
  shared: "activeflow.experts.shared",
  // u32 / u32: hidden width of a routed expert and of the shared expert (0: none).
  nFf: "activeflow.experts.n_ff",
  nFfShared: "activeflow.experts.n_ff_shared",
  // string: "split" or "columns", for every expert part.
  layout: "activeflow.experts.column_layout",
  // u32: the column type ("columns") or I8 ("split").
  columnType: "activeflow.experts.column_type",
  // u32[n_layer x 6], split only: source types of gate, up, down of the routed experts, then of
  // the shared expert (0 when there is none), layer-major.
  partTypes: "activeflow.experts.part_types",
} as const;

export interface ExpertShape {
  nExpert: number; // routed experts per layer
  shared: boolean; // one more per layer, taken by every token
  nEmbd: number;
  nFf: number;
  nFfShared: number; // 0 without a shared expert
  layout: ColumnLayout;
  columnType: number; // columns: the column type; split: I8
  partTypes?: readonly number[]; // split: [n_layer][6]
}

// Split scale planes start on this boundary inside the scales tensor (vector loads of halves).
const PLANE_ALIGN = 64;
export const EXPERT_TYPES_PER_LAYER = 6;

export const expertTensorName = (layer: number, expert: number, part: "ffn_in" | "ffn_out" | "scales"): string => `af.l${layer}.x${expert}.${part}`;

// One extent of an expert, placed in the file.
export interface ExpertExtentPart {
  name: string;
  nIn: number;
  recordBytes: number;
  parts: RecordPart[]; // ffn_in: gate, up; ffn_out: down (offsets inside the record)
  dims: [number, number];
  type: number; // the tensor's type: the column type, or I8 for split records
  bytes: number;
  dataOffset: number;
  firstPage: number;
  pages: number;
}

export interface ExpertLayout {
  layer: number;
  expert: number; // nExpert for the shared expert
  nFf: number;
  in: ExpertExtentPart;
  out: ExpertExtentPart;
  // Split only: the three scale planes (gate, up, down) in one F16 tensor, each plane at
  // `planeOffsets[k]` bytes from its start.
  scales?: { name: string; dims: [number]; bytes: number; dataOffset: number; firstPage: number; pages: number; planeOffsets: [number, number, number] };
  // The whole expert as one read: from in.dataOffset over `spanBytes` (page multiple).
  spanBytes: number;
}

// Bytes of a split scale plane (activeflow/colx_kernels.h): halves per (block-column, row).
function planeBytes(type: number, nOut: number, nIn: number): number {
  const params = type === GgmlType.Q4_1 ? 2 : 1;
  return (nIn / 32) * nOut * params * 2;
}

// Lays out every expert of every layer, layer-major, experts in order then the shared one;
// `place` assigns a data offset (4 KiB aligned) to `bytes`, pages continue from `firstPage`.
export function layoutExperts(
  s: ExpertShape, nLayer: number, place: (bytes: number) => number, firstPage: number,
  partBytes: (type: number, nOut: number, split: boolean) => number, pageBytes: number,
): { experts: ExpertLayout[]; pages: number } {
  const split = s.layout === "split";
  if (split && (!s.partTypes || s.partTypes.length !== nLayer * EXPERT_TYPES_PER_LAYER)) {
    throw new ActiveflowError("BAD_ARGUMENT", `split experts need ${nLayer * EXPERT_TYPES_PER_LAYER} part types (layers x 6), got ${s.partTypes?.length ?? 0}`);
  }
  let pages = firstPage;
  const experts: ExpertLayout[] = [];
  const slots = s.nExpert + (s.shared ? 1 : 0);
  const extent = (name: string, nIn: number, layer: number, tensors: readonly string[], nOut: readonly number[], types: readonly number[]): ExpertExtentPart => {
    const parts: RecordPart[] = [];
    let recordBytes = 0, recordElems = 0;
    tensors.forEach((tensor, k) => {
      const type = split ? types[k]! : s.columnType;
      const bytes = partBytes(type, nOut[k]!, split);
      parts.push({ layer, tensor, nOut: nOut[k]!, offset: recordBytes, bytes, type });
      recordBytes += bytes;
      recordElems += nOut[k]!;
    });
    const bytes = recordBytes * nIn;
    const dataOffset = place(bytes);
    const n = Math.ceil(bytes / pageBytes);
    const e: ExpertExtentPart = { name, nIn, recordBytes, parts, dims: [split ? recordBytes : recordElems, nIn], type: split ? GgmlType.I8 : s.columnType, bytes, dataOffset, firstPage: pages, pages: n };
    pages += n;
    return e;
  };
  for (let l = 0; l < nLayer; l++) {
    for (let x = 0; x < slots; x++) {
      const isShared = x === s.nExpert;
      const nFf = isShared ? s.nFfShared : s.nFf;
      const names = isShared ? SHARED_EXPERT_TENSORS : EXPERT_TENSORS;
      const types = split ? s.partTypes!.slice(l * EXPERT_TYPES_PER_LAYER + (isShared ? 3 : 0), l * EXPERT_TYPES_PER_LAYER + (isShared ? 6 : 3)) : [];
      const inExt = extent(expertTensorName(l, x, "ffn_in"), s.nEmbd, l, names.slice(0, 2), [nFf, nFf], types.slice(0, 2));
      const outExt = extent(expertTensorName(l, x, "ffn_out"), nFf, l, names.slice(2), [s.nEmbd], types.slice(2));
      const ex: ExpertLayout = { layer: l, expert: x, nFf, in: inExt, out: outExt, spanBytes: 0 };
      let end = outExt.dataOffset + outExt.pages * pageBytes;
      if (split) {
        const sizes = [planeBytes(types[0]!, nFf, s.nEmbd), planeBytes(types[1]!, nFf, s.nEmbd), planeBytes(types[2]!, s.nEmbd, nFf)];
        const at0 = 0, at1 = Math.ceil(sizes[0]! / PLANE_ALIGN) * PLANE_ALIGN, at2 = at1 + Math.ceil(sizes[1]! / PLANE_ALIGN) * PLANE_ALIGN;
        const bytes = Math.ceil((at2 + sizes[2]!) / PLANE_ALIGN) * PLANE_ALIGN;
        const dataOffset = place(bytes);
        const n = Math.ceil(bytes / pageBytes);
        ex.scales = { name: expertTensorName(l, x, "scales"), dims: [bytes / 2], bytes, dataOffset, firstPage: pages, pages: n, planeOffsets: [at0, at1, at2] };
        pages += n;
        end = dataOffset + n * pageBytes;
      }
      ex.spanBytes = end - inExt.dataOffset;
      experts.push(ex);
    }
  }
  return { experts, pages: pages - firstPage };
}

// The tensors of the experts in file order (for the writer and the reader's check).
export function expertTensors(experts: readonly ExpertLayout[]): { name: string; dims: number[]; type: number; bytes: number; dataOffset: number }[] {
  const out: { name: string; dims: number[]; type: number; bytes: number; dataOffset: number }[] = [];
  for (const x of experts) {
    for (const e of [x.in, x.out]) out.push({ name: e.name, dims: [...e.dims], type: e.type, bytes: e.bytes, dataOffset: e.dataOffset });
    if (x.scales) out.push({ name: x.scales.name, dims: [...x.scales.dims], type: GgmlType.F16, bytes: x.scales.bytes, dataOffset: x.scales.dataOffset });
  }
  return out;
}

export function describeExpertLayout(s: ExpertShape): string {
  return `${s.nExpert}${s.shared ? " + 1 shared" : ""} experts per layer, ${s.layout === "split" ? "split" : `${typeName(s.columnType)} columns`}`;
}
