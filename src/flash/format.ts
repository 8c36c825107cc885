// The flash layout (docs/FLASH_FORMAT.md): constants, metadata key names, and the layout of
// a converted model computed from its shapes alone, so the converter and the reader derive
// the same extents, record sizes and offsets from the same function.
import { SITES } from "../backend/Backend.js";
import { ActiveflowError } from "../errors.js";
import { GgmlType, TYPE_LAYOUT, typeName } from "../gguf/types.js";
import { layoutExperts, type ExpertLayout, type ExpertShape } from "./experts.js";

// Version written: 2 when a site has split columns, else 1 (the v1 format unchanged, so older
// readers keep reading such files). Readers accept both.
export const FLASH_VERSION_COLUMNS = 1;
export const FLASH_VERSION_SPLIT = 2;
// A record order (section 12): a reader that ignored it would compute with the wrong channels.
export const FLASH_VERSION_ORDERED = 3;
export const FLASH_VERSIONS: readonly number[] = [FLASH_VERSION_COLUMNS, FLASH_VERSION_SPLIT, FLASH_VERSION_ORDERED];
// Direct I/O needs 4 KiB-aligned offsets and lengths: every tensor starts on a page.
export const FLASH_ALIGNMENT = 4096;
// Bytes covered by one CRC-32C entry; pages are counted from each extent's start.
export const CRC_PAGE_BYTES = 4096;
export const CRC_TENSOR = "af.crc32c";
// 1: even with group buffers keeping a group's records between its layers, the random 7B
// read more per token with groups of 4 (2.48 vs 1.46 GB on demand at 50 %) and was no faster
// (bench/results/pipeline-2026-11-22T04-24-42Z.json, ...04-40-12Z.json).
export const DEFAULT_GROUP_SIZE = 1;
// Zero bytes kept in the header (activeflow.reserved) so `calibrate` can add its
// threshold keys by rewriting the header in place, without moving any tensor data.
export const HEADER_RESERVE_BYTES = 64 * 1024;

// Inputs of the linear layers; the tensors of one site share that input.
// The site list is the sparsity layer's (thresholds and histograms use the same order).
export { SITES };
export type SiteName = (typeof SITES)[number];

// The dense sites of a mixture-of-experts model: attention only; its FFN is the experts'
// (src/flash/experts.ts).
export const MOE_SITES: readonly SiteName[] = ["attn_in", "attn_out"];

// Source tensors of each site (blk.<l>.<tensor>.weight), in record order.
export const SITE_TENSORS: Readonly<Record<SiteName, readonly string[]>> = {
  attn_in: ["attn_q", "attn_k", "attn_v"],
  attn_out: ["attn_output"],
  ffn_in: ["ffn_gate", "ffn_up"],
  ffn_out: ["ffn_down"],
};

export const KEY = {
  version: "activeflow.version",
  groupSize: "activeflow.group_size",
  sourceName: "activeflow.source.name",
  sourceBytes: "activeflow.source.bytes",
  checksum: "activeflow.checksum",
  pageSize: "activeflow.page_size",
  // CRC-32C of the header bytes (section 6), optional: files converted before it have none.
  headerChecksum: "activeflow.header_crc32c",
  sites: "activeflow.sites",
  reserved: "activeflow.reserved",
  columnType: (s: SiteName): string => `activeflow.column_type.${s}`,
  // v2: "columns" (requantised, section 4) or "split" (codes + scale planes); v1 files: columns.
  columnLayout: (s: SiteName): string => `activeflow.column_layout.${s}`,
  // v2, split sites: the source type of each (layer, tensor), layer-major.
  partTypes: (s: SiteName): string => `activeflow.part_types.${s}`,
  quantError: (s: SiteName): string => `activeflow.quant_error.${s}`,
  nIn: (s: SiteName): string => `activeflow.n_in.${s}`,
  nOut: (s: SiteName): string => `activeflow.n_out.${s}`,
  tensors: (s: SiteName): string => `activeflow.tensors.${s}`,
  // Written later by `calibrate`; the converter leaves them out.
  thresholdsPrefix: "activeflow.thresholds.",
  // Optional, written by `reorder` (section 12): [groups][n_in] the channel each record holds,
  // and each record's calibrated activity (layer visits per token that need it).
  recordOrder: (s: SiteName): string => `activeflow.record_order.${s}`,
  recordFreq: (s: SiteName): string => `activeflow.record_freq.${s}`,
} as const;

export const CHECKSUM_NAME = "crc32c";

// Record orders `activeflow reorder` writes (section 12): hottest channel first, or channel order.
export type RecordOrder = "hot" | "identity";
export const RECORD_ORDERS: readonly RecordOrder[] = ["hot", "identity"];

export const extentName = (group: number, site: SiteName): string => `af.g${group}.${site}`;
// The resident scale plane of one split (layer, tensor).
export const scalePlaneName = (layer: number, tensor: string): string => `af.scales.blk.${layer}.${tensor}`;
export const sourceTensorName = (layer: number, tensor: string): string => `blk.${layer}.${tensor}.weight`;

// Bytes of one row of n elements of `type` (n a multiple of its block size).
export function rowBytes(type: number, n: number): number {
  const layout = TYPE_LAYOUT[type];
  if (!layout) throw new ActiveflowError("BAD_ARGUMENT", `unknown tensor type ${typeName(type)}`);
  if (n % layout[0] !== 0) {
    throw new ActiveflowError("BAD_ARGUMENT", `${n} elements are not a whole number of ${typeName(type)} blocks of ${layout[0]}`);
  }
  return (n / layout[0]) * layout[1];
}

// How a site's weights are stored (docs/FLASH_FORMAT.md section 4):
// "columns": every column requantised into the column type along the column;
// "split": the source's own integer codes per channel, its block parameters in resident
// scale planes, so the values are the source's exactly (Q4_0, Q4_1, Q8_0 sources).
export type ColumnLayout = "columns" | "split";
export const COLUMN_LAYOUTS: readonly ColumnLayout[] = ["columns", "split"];

// Source types that can be split: code bits per weight, halves per (block-column, row) in the
// scale plane (d, or d and m).
export const SPLIT_TYPES: ReadonlyMap<number, { bits: number; params: number }> = new Map([
  [GgmlType.Q4_0, { bits: 4, params: 1 }],
  [GgmlType.Q4_1, { bits: 4, params: 2 }],
  [GgmlType.Q8_0, { bits: 8, params: 1 }],
]);
// Rows of one split tile (a 16-byte chunk of 4-bit codes); n_out must be a multiple.
export const SPLIT_ROWS = 32;
// Input channels sharing one block parameter: the source's block size.
export const SPLIT_BLOCK = 32;

export function canSplit(type: number, nIn: number, nOut: number): boolean {
  return SPLIT_TYPES.has(type) && nOut % SPLIT_ROWS === 0 && nIn % SPLIT_BLOCK === 0 && nOut > 0 && nIn > 0;
}

// Bytes of one channel's codes of a split tensor with nOut rows.
export function splitCodeBytes(type: number, nOut: number): number {
  const t = SPLIT_TYPES.get(type);
  if (!t || nOut % SPLIT_ROWS !== 0) {
    throw new ActiveflowError("BAD_ARGUMENT", `${typeName(type)} with ${nOut} rows cannot be split (Q4_0, Q4_1 or Q8_0 with rows a multiple of ${SPLIT_ROWS})`);
  }
  return (nOut * t.bits) / 8;
}

// GGUF dims of a scale plane (type F16): [nOut, nIn / 32], or [nOut, 2, nIn / 32] with d and m.
export function scalePlaneDims(type: number, nOut: number, nIn: number): number[] {
  const t = SPLIT_TYPES.get(type)!;
  return t.params === 2 ? [nOut, 2, nIn / SPLIT_BLOCK] : [nOut, nIn / SPLIT_BLOCK];
}

// Shape of one site, the same in every layer.
export interface SiteShape {
  site: SiteName;
  // Input channels: records per extent.
  nIn: number;
  // Source tensors in record order, and each one's output rows (the column length).
  tensors: readonly string[];
  nOut: readonly number[];
  // GGML type of the extent tensors: every column's type ("columns"), I8 ("split").
  columnType: number;
  // Defaults to "columns".
  layout?: ColumnLayout;
  // "split" only: the source type of each (layer, tensor), [nLayer][tensors.length].
  partTypes?: readonly number[];
}

// Where column j of one layer's tensor sits inside record j.
export interface RecordPart {
  layer: number;
  tensor: string;
  nOut: number;
  // Byte offset inside the record, and bytes of the column: rowBytes(type, nOut) for
  // "columns", splitCodeBytes(type, nOut) for "split".
  offset: number;
  bytes: number;
  // The block type of this part: the column type, or (split) the source tensor's type.
  type: number;
  // Split only: name of the part's scale plane (a resident tensor).
  scales?: string;
}

// The resident scale plane of one split (layer, tensor): F16 halves, block-column-major.
export interface ScalePlane {
  name: string;
  layer: number;
  site: SiteName;
  tensor: string;
  // The source type (Q4_0, Q4_1, Q8_0): 1 or 2 halves per (block-column, row).
  sourceType: number;
  dims: number[];
  type: number; // F16
  bytes: number;
  dataOffset: number;
}

export interface ExtentLayout {
  name: string;
  group: number;
  site: SiteName;
  firstLayer: number;
  layers: number;
  nIn: number;
  layout: ColumnLayout;
  // The extent tensor's GGML type: the column type, or I8 for split records.
  columnType: number;
  // Bytes of one record (one input channel for every layer and tensor of the group).
  recordBytes: number;
  // GGUF dims of the extent tensor, type columnType: [record elements, nIn], or for split
  // records [recordBytes, nIn].
  dims: [number, number];
  // nIn * recordBytes.
  bytes: number;
  // parts[li * tensors + ti]: layer firstLayer + li, tensor ti of the site.
  parts: RecordPart[];
  // Offset of record 0 from the start of the GGUF data section (a multiple of FLASH_ALIGNMENT).
  dataOffset: number;
  // Index of the extent's first CRC page in af.crc32c, and its page count.
  firstPage: number;
  pages: number;
}

export interface ResidentTensor {
  name: string;
  dims: readonly number[];
  type: number;
  bytes: number;
  dataOffset: number;
}

export interface FlashLayout {
  nLayer: number;
  groupSize: number;
  groups: number;
  sites: SiteShape[];
  // Copied tensors, in file order (first).
  resident: ResidentTensor[];
  // Scale planes of the split sites, in file order (after the copied tensors, before the
  // extents): layer-major, then sites, then tensors.
  scales: ScalePlane[];
  // Extents in file order: group 0's sites in SITES order, then group 1, ...
  extents: ExtentLayout[];
  // Mixture-of-experts models: every (layer, expert)'s extents, after the dense extents
  // (src/flash/experts.ts); empty for a dense model.
  experts: ExpertLayout[];
  expertShape?: ExpertShape;
  crc: { name: string; pages: number; bytes: number; dataOffset: number };
  // Bytes of the data section (up to the end of the last tensor).
  dataBytes: number;
}

export interface LayoutInput {
  nLayer: number;
  groupSize: number;
  sites: SiteShape[];
  resident: readonly { name: string; dims: readonly number[]; type: number }[];
  // MoE models: the experts' shape (their sites are not in `sites`, which then holds attn_in
  // and attn_out only).
  experts?: ExpertShape;
}

const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;

// The full layout of a converted model, offsets relative to the GGUF data section. Tensor
// order: resident tensors, extents (group-major, SITES order), then af.crc32c.
export function computeFlashLayout(input: LayoutInput): FlashLayout {
  const { nLayer, groupSize } = input;
  if (!Number.isInteger(groupSize) || groupSize < 1) {
    throw new ActiveflowError("BAD_ARGUMENT", `group size ${groupSize} must be a positive integer`);
  }
  if (!Number.isInteger(nLayer) || nLayer < 1) {
    throw new ActiveflowError("BAD_ARGUMENT", `layer count ${nLayer} must be a positive integer`);
  }
  let at = 0;
  const place = (bytes: number): number => {
    const off = alignUp(at, FLASH_ALIGNMENT);
    at = off + bytes;
    return off;
  };
  const resident = input.resident.map((t) => {
    const [blk, bb] = TYPE_LAYOUT[t.type] ?? [0, 0];
    if (!blk) throw new ActiveflowError("BAD_ARGUMENT", `tensor ${t.name}: unknown type ${typeName(t.type)}`);
    const bytes = (t.dims.reduce((a, b) => a * b, 1) / blk) * bb;
    return { name: t.name, dims: [...t.dims], type: t.type, bytes, dataOffset: place(bytes) };
  });

  for (const s of input.sites) checkSplitSite(s, nLayer);
  const split = (s: SiteShape): boolean => s.layout === "split";
  const partType = (s: SiteShape, layer: number, ti: number): number => (split(s) ? s.partTypes![layer * s.tensors.length + ti]! : s.columnType);
  const scales: ScalePlane[] = [];
  for (let l = 0; l < nLayer; l++) {
    for (const s of input.sites) {
      if (!split(s)) continue;
      s.tensors.forEach((tensor, ti) => {
        const sourceType = partType(s, l, ti);
        const dims = scalePlaneDims(sourceType, s.nOut[ti]!, s.nIn);
        const bytes = dims.reduce((a, b) => a * b, 1) * 2;
        scales.push({ name: scalePlaneName(l, tensor), layer: l, site: s.site, tensor, sourceType, dims, type: GgmlType.F16, bytes, dataOffset: place(bytes) });
      });
    }
  }

  const groups = Math.ceil(nLayer / groupSize);
  const extents: ExtentLayout[] = [];
  let pagesSoFar = 0;
  for (let g = 0; g < groups; g++) {
    const firstLayer = g * groupSize;
    const layers = Math.min(groupSize, nLayer - firstLayer);
    for (const s of input.sites) {
      const parts: RecordPart[] = [];
      let recordBytes = 0;
      let recordElems = 0;
      for (let li = 0; li < layers; li++) {
        s.tensors.forEach((tensor, ti) => {
          const nOut = s.nOut[ti]!;
          const layer = firstLayer + li;
          const type = partType(s, layer, ti);
          const bytes = split(s) ? splitCodeBytes(type, nOut) : rowBytes(type, nOut);
          parts.push({ layer, tensor, nOut, offset: recordBytes, bytes, type, ...(split(s) ? { scales: scalePlaneName(layer, tensor) } : {}) });
          recordBytes += bytes;
          recordElems += nOut;
        });
      }
      const bytes = recordBytes * s.nIn;
      const pages = Math.ceil(bytes / CRC_PAGE_BYTES);
      extents.push({
        name: extentName(g, s.site), group: g, site: s.site, firstLayer, layers, nIn: s.nIn, layout: s.layout ?? "columns",
        columnType: s.columnType, recordBytes, dims: [split(s) ? recordBytes : recordElems, s.nIn], bytes, parts,
        dataOffset: place(bytes), firstPage: pagesSoFar, pages,
      });
      pagesSoFar += pages;
    }
  }
  let experts: ExpertLayout[] = [];
  if (input.experts) {
    // Checksummed like extents: their pages continue the run, so one table covers both.
    const partBytes = (type: number, nOut: number, split: boolean): number => (split ? splitCodeBytes(type, nOut) : rowBytes(type, nOut));
    const r = layoutExperts(input.experts, nLayer, place, pagesSoFar, partBytes, CRC_PAGE_BYTES);
    experts = r.experts;
    pagesSoFar += r.pages;
  }
  const crcBytes = pagesSoFar * 4;
  const crc = { name: CRC_TENSOR, pages: pagesSoFar, bytes: crcBytes, dataOffset: place(crcBytes) };
  return { nLayer, groupSize, groups, sites: input.sites, resident, scales, extents, experts, ...(input.experts ? { expertShape: input.experts } : {}), crc, dataBytes: at };
}

// A split site must give a splittable source type for every (layer, tensor), and an I8 extent.
function checkSplitSite(s: SiteShape, nLayer: number): void {
  if (s.layout === undefined || s.layout === "columns") return;
  if (s.layout !== "split") throw new ActiveflowError("BAD_ARGUMENT", `site ${s.site}: column layout "${String(s.layout)}" is not one of ${COLUMN_LAYOUTS.join(", ")}`);
  const want = nLayer * s.tensors.length;
  if (!s.partTypes || s.partTypes.length !== want) {
    throw new ActiveflowError("BAD_ARGUMENT", `site ${s.site}: split columns need ${want} part types (layers x tensors), got ${s.partTypes?.length ?? 0}`);
  }
  if (s.columnType !== GgmlType.I8) {
    throw new ActiveflowError("BAD_ARGUMENT", `site ${s.site}: split extents are ${typeName(GgmlType.I8)}, not ${typeName(s.columnType)}`);
  }
  s.partTypes.forEach((t, k) => {
    const ti = k % s.tensors.length;
    if (!canSplit(t, s.nIn, s.nOut[ti]!)) {
      throw new ActiveflowError("BAD_ARGUMENT",
        `site ${s.site}: layer ${Math.floor(k / s.tensors.length)} ${s.tensors[ti]} is ${typeName(t)} [${s.nIn}, ${s.nOut[ti]}], which cannot be split ` +
        `(Q4_0, Q4_1 or Q8_0 with n_out a multiple of ${SPLIT_ROWS})`);
    }
  });
}

// The extent of layer group `group` and `site`.
export function findExtent(layout: FlashLayout, group: number, site: SiteName): ExtentLayout {
  const i = group * layout.sites.length + layout.sites.findIndex((s) => s.site === site);
  const e = layout.extents[i];
  if (!e || e.group !== group || e.site !== site) {
    throw new ActiveflowError("BAD_ARGUMENT", `no extent for group ${group} site ${site} (groups: ${layout.groups})`);
  }
  return e;
}

// Pages [first, last] of an extent that hold records [j0, j1) (for reading with direct I/O).
export function recordPages(e: ExtentLayout, j0: number, j1: number): { first: number; last: number } {
  return { first: Math.floor((j0 * e.recordBytes) / CRC_PAGE_BYTES), last: Math.floor((j1 * e.recordBytes - 1) / CRC_PAGE_BYTES) };
}
