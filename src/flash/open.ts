// Reads a flash-layout model (docs/FLASH_FORMAT.md): validates the activeflow.* keys and
// the extent tensors against the layout computed from them, loads the page checksums, and
// gives absolute file offsets for every extent and resident tensor.
import { open, type FileHandle } from "node:fs/promises";
import { ActiveflowError } from "../errors.js";
import { GgmlType, typeName, type GgufFile } from "../gguf/types.js";
import {
  findTensor, getNumber, getNumberArray, getOptionalNumber, getOptionalNumberArray, getString, getStringArray, readGguf,
} from "../gguf/reader.js";
import type { ConversionKernels } from "../backend/Backend.js";
import { crc32c } from "./crc32c.js";
import { EXPERT_KEY, EXPERT_TYPES_PER_LAYER, expertTensors, type ExpertLayout, type ExpertShape } from "./experts.js";
import { checkHeaderChecksum } from "./headerChecksum.js";
import {
  CHECKSUM_NAME, COLUMN_LAYOUTS, CRC_PAGE_BYTES, CRC_TENSOR, FLASH_ALIGNMENT, FLASH_VERSIONS, FLASH_VERSION_COLUMNS, FLASH_VERSION_ORDERED, KEY,
  MOE_SITES, SITES, SITE_TENSORS, computeFlashLayout, findExtent, recordPages,
  type ColumnLayout, type ExtentLayout, type FlashLayout, type ResidentTensor, type SiteName, type SiteShape,
} from "./format.js";

export interface FlashExtent extends ExtentLayout {
  // Absolute file offset of record 0 (a multiple of 4096); record j is at offset + j * recordBytes.
  offset: number;
  // [nIn] the input channel record k holds (activeflow.record_order); absent: record k holds channel k.
  recordOrder?: Uint32Array;
  // [nIn] each record's calibrated activity, file order (activeflow.record_freq); absent when not measured.
  recordFreq?: Float32Array;
}

export interface FlashResident extends ResidentTensor {
  // Absolute file offset of the tensor's data.
  offset: number;
}

export interface FlashModel {
  path: string;
  gguf: GgufFile;
  arch: string;
  nLayer: number;
  groupSize: number;
  groups: number;
  sites: SiteShape[];
  version: number;
  // Relative RMS error of the column requantisation, per site (0 for split sites).
  quantError: Map<SiteName, number>;
  // File order: group-major, SITES order within a group.
  extents: FlashExtent[];
  // Tensors kept in DRAM: the copied ones (norms, embeddings, ...), then the scale planes.
  resident: FlashResident[];
  // The scale planes alone (split sites), as in layout.scales.
  scales: FlashResident[];
  // Mixture-of-experts models: every (layer, expert)'s extents with the absolute file offset
  // of its first tensor (the whole expert is `spanBytes` from there); empty for dense models.
  experts: (ExpertLayout & { offset: number })[];
  expertShape?: ExpertShape;
  // CRC-32C of each 4 KiB extent page; an extent's pages start at its firstPage.
  crc: Uint32Array;
  layout: FlashLayout;
}

function bad(path: string, msg: string): never {
  throw new ActiveflowError("GGUF_BAD_VALUE", `${path}: ${msg}`);
}

function badTensor(path: string, msg: string): never {
  throw new ActiveflowError("GGUF_BAD_TENSOR", `${path}: ${msg}`);
}

// Site shapes as the file's activeflow.* keys describe them (version 1: requantised columns).
function readSites(f: GgufFile, version: number, nLayer: number, moe: boolean): SiteShape[] {
  const sites = getStringArray(f, KEY.sites);
  const want = moe ? MOE_SITES : SITES;
  if (sites.join() !== want.join()) bad(f.path, `${KEY.sites} is [${sites.join(", ")}], expected [${want.join(", ")}]${moe ? " (a mixture-of-experts file)" : ""}`);
  return want.map((site) => {
    const tensors = getStringArray(f, KEY.tensors(site));
    if (tensors.join() !== SITE_TENSORS[site].join()) {
      bad(f.path, `${KEY.tensors(site)} is [${tensors.join(", ")}], expected [${SITE_TENSORS[site].join(", ")}]`);
    }
    const nOut = [...getNumberArray(f, KEY.nOut(site))];
    if (nOut.length !== tensors.length || nOut.some((n) => !Number.isInteger(n) || n < 1)) {
      bad(f.path, `${KEY.nOut(site)} is [${nOut.join(", ")}], expected ${tensors.length} positive column lengths`);
    }
    const nIn = getNumber(f, KEY.nIn(site));
    if (!Number.isInteger(nIn) || nIn < 1) bad(f.path, `${KEY.nIn(site)} is ${nIn}, expected a positive channel count`);
    const columnType = getNumber(f, KEY.columnType(site));
    if (version === FLASH_VERSION_COLUMNS) return { site, nIn, tensors, nOut, columnType };
    const layout = getString(f, KEY.columnLayout(site)) as ColumnLayout;
    if (!COLUMN_LAYOUTS.includes(layout)) bad(f.path, `${KEY.columnLayout(site)} is "${layout}", expected one of ${COLUMN_LAYOUTS.join(", ")}`);
    if (layout === "columns") return { site, nIn, tensors, nOut, columnType, layout };
    const partTypes = [...getNumberArray(f, KEY.partTypes(site))];
    if (partTypes.length !== nLayer * tensors.length) {
      bad(f.path, `${KEY.partTypes(site)} holds ${partTypes.length} types, expected ${nLayer * tensors.length} (layers x tensors)`);
    }
    return { site, nIn, tensors, nOut, columnType, layout, partTypes };
  });
}

// Opens and validates a converted model; reads the header (unless the caller has it parsed
// already: a large vocabulary's header costs megabytes each time) and the checksum table only.
export async function openFlashModel(path: string, header?: GgufFile): Promise<FlashModel> {
  const f = header ?? (await readGguf(path));
  const version = getOptionalNumber(f, KEY.version);
  if (version === undefined) bad(path, `not a flash-layout model (no ${KEY.version}); convert it with \`activeflow convert\``);
  // Before any value of the header is believed: a damaged one is said to be damaged.
  const headerBytes = Buffer.alloc(f.dataOffset);
  const hf = await open(path, "r");
  try {
    await readFully(hf, headerBytes, 0, path);
  } finally {
    await hf.close();
  }
  checkHeaderChecksum(headerBytes, path, f.metadata.size);
  if (!FLASH_VERSIONS.includes(version)) bad(path, `${KEY.version} is ${version}, this build reads versions ${FLASH_VERSIONS.slice(0, -1).join(", ")} and ${FLASH_VERSIONS[FLASH_VERSIONS.length - 1]}`);
  if (f.alignment !== FLASH_ALIGNMENT) bad(path, `general.alignment is ${f.alignment}, expected ${FLASH_ALIGNMENT}`);
  const checksum = getString(f, KEY.checksum);
  if (checksum !== CHECKSUM_NAME) bad(path, `${KEY.checksum} is "${checksum}", expected "${CHECKSUM_NAME}"`);
  const pageSize = getNumber(f, KEY.pageSize);
  if (pageSize !== CRC_PAGE_BYTES) bad(path, `${KEY.pageSize} is ${pageSize}, expected ${CRC_PAGE_BYTES}`);
  const arch = getString(f, "general.architecture");
  const nLayer = getNumber(f, `${arch}.block_count`);
  const groupSize = getNumber(f, KEY.groupSize);
  const experts = readExpertShape(f, nLayer);
  const sites = readSites(f, version, nLayer, experts !== undefined);
  const resident = f.tensors.filter((t) => !t.name.startsWith("af.")).map((t) => ({ name: t.name, dims: t.dims, type: t.type }));
  let layout: FlashLayout;
  try {
    layout = computeFlashLayout({ nLayer, groupSize, sites, resident, ...(experts ? { experts } : {}) });
  } catch (e) {
    bad(path, (e as Error).message);
  }

  // Every tensor must sit where the layout says, so offsets can be trusted without the GGUF.
  const expected = [...layout.resident, ...layout.scales, ...layout.extents.map((e) => ({ ...e, type: e.columnType })), ...expertTensors(layout.experts),
    { name: CRC_TENSOR, dims: [layout.crc.pages], type: GgmlType.I32 as number, bytes: layout.crc.bytes, dataOffset: layout.crc.dataOffset }];
  if (f.tensors.length !== expected.length) {
    badTensor(path, `has ${f.tensors.length} tensors, the flash layout of ${layout.groups} groups x ${sites.length} sites expects ${expected.length}`);
  }
  for (const x of expected) {
    const t = findTensor(f, x.name) ?? badTensor(path, `extent tensor ${x.name} is missing`);
    if (t.type !== x.type || t.dims.join() !== x.dims.join() || t.offset !== x.dataOffset) {
      badTensor(path, `tensor ${x.name} is ${typeName(t.type)} [${t.dims.join(", ")}] at data offset ${t.offset}, ` +
        `the layout expects ${typeName(x.type)} [${x.dims.join(", ")}] at ${x.dataOffset}`);
    }
  }
  const crcInfo = findTensor(f, CRC_TENSOR)!;
  const crc = new Uint32Array(layout.crc.pages);
  const fh = await open(path, "r");
  try {
    await readFully(fh, new Uint8Array(crc.buffer), f.dataOffset + crcInfo.offset, path);
  } finally {
    await fh.close();
  }
  const quantError = new Map<SiteName, number>(sites.map((s) => [s.site, getNumber(f, KEY.quantError(s.site))]));
  const scales = layout.scales.map((t) => ({ name: t.name, dims: t.dims, type: t.type, bytes: t.bytes, dataOffset: t.dataOffset, offset: f.dataOffset + t.dataOffset }));
  const orders = readRecordKeys(f, sites, layout.groups, version);
  return {
    path, gguf: f, arch, nLayer, groupSize, groups: layout.groups, sites, version, quantError, layout, crc,
    extents: layout.extents.map((e) => {
      const x: FlashExtent = { ...e, offset: f.dataOffset + e.dataOffset };
      const k = orders.get(e.site);
      if (k?.order) x.recordOrder = k.order.subarray(e.group * e.nIn, (e.group + 1) * e.nIn);
      if (k?.freq) x.recordFreq = k.freq.subarray(e.group * e.nIn, (e.group + 1) * e.nIn);
      return x;
    }),
    resident: [...layout.resident.map((t) => ({ ...t, offset: f.dataOffset + t.dataOffset })), ...scales],
    scales,
    experts: layout.experts.map((x) => ({ ...x, offset: f.dataOffset + x.in.dataOffset })),
    ...(layout.expertShape ? { expertShape: layout.expertShape } : {}),
  };
}

// The experts' keys (src/flash/experts.ts), or undefined for a dense model.
function readExpertShape(f: GgufFile, nLayer: number): ExpertShape | undefined {
  const nExpert = getOptionalNumber(f, EXPERT_KEY.count);
  if (nExpert === undefined) return undefined;
  if (!Number.isInteger(nExpert) || nExpert < 1) bad(f.path, `${EXPERT_KEY.count} is ${nExpert}, expected a positive expert count`);
  const shared = getNumber(f, EXPERT_KEY.shared) === 1;
  const nFf = getNumber(f, EXPERT_KEY.nFf);
  const nFfShared = getNumber(f, EXPERT_KEY.nFfShared);
  if (!(nFf >= 1) || (shared && !(nFfShared >= 1))) bad(f.path, `${EXPERT_KEY.nFf} / ${EXPERT_KEY.nFfShared} are ${nFf} / ${nFfShared}, expected positive widths`);
  const layout = getString(f, EXPERT_KEY.layout) as ColumnLayout;
  if (!COLUMN_LAYOUTS.includes(layout)) bad(f.path, `${EXPERT_KEY.layout} is "${layout}", expected one of ${COLUMN_LAYOUTS.join(", ")}`);
  const columnType = getNumber(f, EXPERT_KEY.columnType);
  const arch = getString(f, "general.architecture");
  const shape: ExpertShape = { nExpert, shared, nEmbd: getNumber(f, `${arch}.embedding_length`), nFf, nFfShared: shared ? nFfShared : 0, layout, columnType };
  if (layout === "split") {
    const types = [...getNumberArray(f, EXPERT_KEY.partTypes)];
    if (types.length !== nLayer * EXPERT_TYPES_PER_LAYER) bad(f.path, `${EXPERT_KEY.partTypes} holds ${types.length} types, expected ${nLayer * EXPERT_TYPES_PER_LAYER} (layers x 6)`);
    shape.partTypes = types;
  }
  return shape;
}

// [nIn] channel -> record, the inverse of a record order (record -> channel).
export function recordOfOrder(order: Uint32Array): Int32Array {
  const of = new Int32Array(order.length);
  for (let k = 0; k < order.length; k++) of[order[k]!] = k;
  return of;
}

// The optional record order and frequency keys (FLASH_FORMAT.md section 12), checked: an
// order must be a permutation of each group's channels, frequencies finite and >= 0.
function readRecordKeys(f: GgufFile, sites: SiteShape[], groups: number, version: number): Map<SiteName, { order?: Uint32Array; freq?: Float32Array }> {
  const out = new Map<SiteName, { order?: Uint32Array; freq?: Float32Array }>();
  for (const s of sites) {
    const entry: { order?: Uint32Array; freq?: Float32Array } = {};
    const want = groups * s.nIn;
    const order = getOptionalNumberArray(f, KEY.recordOrder(s.site));
    if ((order !== undefined) !== (version === FLASH_VERSION_ORDERED)) {
      bad(f.path, `${KEY.version} is ${version} and ${KEY.recordOrder(s.site)} is ${order === undefined ? "missing" : "present"}: version ${FLASH_VERSION_ORDERED} files, and only they, have a record order`);
    }
    if (order !== undefined) {
      if (order.length !== want) bad(f.path, `${KEY.recordOrder(s.site)} holds ${order.length} numbers, expected ${want} (${groups} groups x ${s.nIn} channels); run \`activeflow reorder\` on it again`);
      const o = Uint32Array.from(order);
      const seen = new Uint8Array(s.nIn);
      for (let g = 0; g < groups; g++) {
        seen.fill(0);
        for (let k = 0; k < s.nIn; k++) {
          const c = o[g * s.nIn + k]!;
          if (c >= s.nIn || seen[c]) bad(f.path, `${KEY.recordOrder(s.site)} is not a permutation of group ${g}'s channels (record ${k} holds ${c})`);
          seen[c] = 1;
        }
      }
      entry.order = o;
    }
    const freq = getOptionalNumberArray(f, KEY.recordFreq(s.site));
    if (freq !== undefined) {
      if (freq.length !== want) bad(f.path, `${KEY.recordFreq(s.site)} holds ${freq.length} numbers, expected ${want} (${groups} groups x ${s.nIn} channels); run \`activeflow reorder\` on it again`);
      const q = Float32Array.from(freq);
      const at = q.findIndex((v) => !(v >= 0 && Number.isFinite(v)));
      if (at >= 0) bad(f.path, `${KEY.recordFreq(s.site)} entry ${at} is ${q[at]}, expected a finite frequency >= 0`);
      entry.freq = q;
    }
    out.set(s.site, entry);
  }
  return out;
}

async function readFully(fh: FileHandle, buf: Uint8Array, position: number, path: string): Promise<void> {
  let got = 0;
  while (got < buf.length) {
    const { bytesRead } = await fh.read(buf, got, buf.length - got, position + got);
    if (bytesRead === 0) throw new ActiveflowError("GGUF_TRUNCATED", `${path}: data ends early at offset ${position + got}`);
    got += bytesRead;
  }
}

// The extent of layer group `group` and `site` (the layer group of layer l is l / groupSize).
export function flashExtent(model: FlashModel, group: number, site: SiteName): FlashExtent {
  const e = findExtent(model.layout, group, site);
  return model.extents[model.layout.extents.indexOf(e)]!;
}

// Who computes the page checksums: the table code (src/flash/crc32c.ts) unless the caller
// passes a backend's (the addon's SSE4.2 one is ~20x faster).
export type PageChecksum = Pick<ConversionKernels, "crc32c">;
const TABLE_CRC: PageChecksum = { crc32c };

// Checks whole 4 KiB pages read from an extent: `bytes` holds extent pages firstPage,
// firstPage + 1, ... (page k is file bytes [offset + k * 4096, offset + (k + 1) * 4096), the
// zero padding after the extent included). Throws FLASH_CHECKSUM naming the extent and the
// file offset of the first bad page.
export function checkExtentPages(model: FlashModel, e: Pick<FlashExtent, "name" | "pages" | "firstPage" | "offset">, firstPage: number, bytes: Uint8Array, checksum: PageChecksum = TABLE_CRC): void {
  if (bytes.length % CRC_PAGE_BYTES !== 0) {
    throw new ActiveflowError("BAD_ARGUMENT", `extent ${e.name}: ${bytes.length} bytes are not whole ${CRC_PAGE_BYTES}-byte pages`);
  }
  for (let o = 0, k = firstPage; o < bytes.length; o += CRC_PAGE_BYTES, k++) {
    if (k >= e.pages) throw new ActiveflowError("BAD_ARGUMENT", `extent ${e.name}: page ${k} is past its ${e.pages} pages`);
    const got = checksum.crc32c(bytes.subarray(o, o + CRC_PAGE_BYTES));
    const want = model.crc[e.firstPage + k]!;
    if (got !== want) {
      throw new ActiveflowError("FLASH_CHECKSUM",
        `${model.path}: extent ${e.name}: page ${k} at file offset ${e.offset + k * CRC_PAGE_BYTES} fails its CRC-32C check: ` +
        `computed 0x${got.toString(16).padStart(8, "0")}, stored 0x${want.toString(16).padStart(8, "0")}`);
    }
  }
}

export interface VerifyOptions {
  signal?: AbortSignal;
  // Fraction of extent bytes checked, 0..1.
  onProgress?: (fraction: number) => void;
  // Defaults to the table code; pass a backend for its faster CRC-32C.
  checksum?: PageChecksum;
}

// Reads every extent and checks every page against af.crc32c; throws on the first bad page.
export async function verifyFlashFile(path: string, options: VerifyOptions = {}): Promise<{ pages: number; bytes: number }> {
  const model = await openFlashModel(path);
  // The experts' tensors are checksummed like extents (src/flash/experts.ts).
  const expertParts = model.experts.flatMap((x) => [x.in, x.out, ...(x.scales ? [x.scales] : [])])
    .map((t) => ({ name: t.name, pages: t.pages, firstPage: t.firstPage, bytes: t.bytes, offset: model.gguf.dataOffset + t.dataOffset }));
  const all = [...model.extents, ...expertParts];
  const total = all.reduce((n, e) => n + e.bytes, 0);
  const buf = new Uint8Array(1024 * CRC_PAGE_BYTES);
  let done = 0;
  const fh = await open(path, "r");
  try {
    for (const e of all) {
      for (let o = 0; o < e.bytes; o += buf.length) {
        if (options.signal?.aborted) {
          throw new ActiveflowError("ABORTED", `verifying ${path} was aborted`, { cause: options.signal.reason });
        }
        const part = buf.subarray(0, Math.min(buf.length, e.pages * CRC_PAGE_BYTES - o));
        await readFully(fh, part, e.offset + o, path);
        checkExtentPages(model, e, o / CRC_PAGE_BYTES, part, options.checksum);
        done += part.length;
        options.onProgress?.(done / total);
      }
    }
  } finally {
    await fh.close();
  }
  return { pages: model.crc.length, bytes: total };
}

// Reads records [j0, j1) of an extent the way the flash store does: the whole 4 KiB pages
// that cover them (offsets and lengths page-aligned), each checked against its CRC-32C. Returns the records' bytes, record j0 first.
export async function readExtentRecords(
  model: FlashModel, fh: FileHandle, e: FlashExtent, j0: number, j1: number, checksum: PageChecksum = TABLE_CRC,
): Promise<Uint8Array> {
  if (!(Number.isInteger(j0) && Number.isInteger(j1) && 0 <= j0 && j0 < j1 && j1 <= e.nIn)) {
    throw new ActiveflowError("BAD_ARGUMENT", `extent ${e.name}: records [${j0}, ${j1}) are not inside [0, ${e.nIn})`);
  }
  const { first, last } = recordPages(e, j0, j1);
  const start = first * CRC_PAGE_BYTES;
  const pages = new Uint8Array((last + 1) * CRC_PAGE_BYTES - start);
  await readFully(fh, pages, e.offset + start, model.path);
  checkExtentPages(model, e, first, pages, checksum);
  return pages.subarray(j0 * e.recordBytes - start, j1 * e.recordBytes - start);
}
