// `activeflow convert`: rewrites a GGUF model into the flash layout (docs/FLASH_FORMAT.md).
// Streams one extent (one layer group, one site) at a time: the group's source tensors of
// that site are read and, in bands of input channels, either split (Q4_0 / Q4_1 / Q8_0: each
// channel's integer codes into its record, the block parameters into resident scale planes,
// written before the extents) or dequantised, transposed and requantised as columns, so
// memory stays near one group's weights of one site.
import { open, rename, rm, stat, type FileHandle } from "node:fs/promises";
import { basename, dirname, resolve } from "node:path";
import type { ConversionKernels } from "../backend/Backend.js";
import { ActiveflowError, diskFull } from "../errors.js";
import { patchFileHeaderChecksum } from "./headerChecksum.js";
import { GgmlType, TYPE_LAYOUT, typeName, type GgufFile, type GgufTensorInfo } from "../gguf/types.js";
import { findTensor, getNumber, getOptionalNumber, getString, readGguf } from "../gguf/reader.js";
import { GgufWriter, arr, f32, str, strArr, u32, u32Arr, u64 } from "../gguf/writer.js";
import { GgufValueType } from "../gguf/types.js";
import type { Crc32cFn } from "./crc32c.js";
import {
  CHECKSUM_NAME, CRC_PAGE_BYTES, DEFAULT_GROUP_SIZE, FLASH_ALIGNMENT, FLASH_VERSION_COLUMNS, FLASH_VERSION_SPLIT,
  HEADER_RESERVE_BYTES, KEY, MOE_SITES, SITES, SITE_TENSORS, canSplit, computeFlashLayout, sourceTensorName,
  type ColumnLayout, type ExtentLayout, type FlashLayout, type ScalePlane, type SiteName, type SiteShape,
} from "./format.js";
import { readTypedMetadata } from "./typedMetadata.js";
import { splitFusedTensors } from "../model/fusedTensors.js";
import { sweepTemps, trackTemp } from "../tempFiles.js";
import { readMoeConfig } from "../model/moe.js";
import { bandRecords } from "./bandRecords.js";
import { expertShapeOf, expertTensorData, type ConvertHelpers } from "./convertExperts.js";
import { EXPERT_KEY, EXPERT_TENSORS, SHARED_EXPERT_TENSORS, describeExpertLayout, expertTensors } from "./experts.js";

export interface ConvertOptions {
  // Layers per group (read together). Defaults to DEFAULT_GROUP_SIZE (1).
  groupSize?: number;
  // Forces requantised columns of this type for every site (must divide every column length
  // into blocks). Defaults to split columns where the source allows (Q4_0, Q4_1, Q8_0), else
  // the source type where it fits, else `fallbackType`.
  columnType?: number;
  // Column type for sites whose source type does not fit the column length, or whose
  // source is low-bit (see keepSourceType). Defaults to Q8_0.
  fallbackType?: number;
  // Requantised columns in a 4-6 bit source type, instead of split columns or Q8_0, even
  // though requantising costs quality (speed work on random weights). Defaults to false.
  keepSourceType?: boolean;
  signal?: AbortSignal;
  // Fraction of the output written, 0..1.
  onProgress?: (fraction: number) => void;
}

export interface SiteReport {
  site: SiteName;
  nIn: number;
  tensors: readonly string[];
  nOut: readonly number[];
  sourceTypes: string[];
  layout: ColumnLayout;
  // The column type ("columns"), or I8 (split: the source's codes).
  columnType: string;
  // Relative RMS error the column requantisation adds: ||dequant(col) - dequant(src)|| / ||dequant(src)||.
  // 0 for split sites (the source's values exactly).
  quantError: number;
  extentBytes: number;
  // Split sites: bytes of the site's resident scale planes (extents + planes = the source's bytes).
  scaleBytes: number;
}

export interface ConvertReport {
  inPath: string;
  outPath: string;
  groupSize: number;
  groups: number;
  nLayer: number;
  version: number;
  sites: SiteReport[];
  // Copied resident tensors, and the scale planes (also resident).
  residentBytes: number;
  scaleBytes: number;
  extentBytes: number;
  // MoE models: the experts' extents (their scale planes included), their layout and the
  // relative RMS error their requantisation adds (0 when split).
  experts?: { bytes: number; layout: string; quantError: number };
  fileBytes: number;
  seconds: number;
  // Peak resident set of the process so far (includes whatever ran before).
  peakRssBytes: number;
}

// Types the kernels can quantise a column into.
const COLUMN_TYPES: ReadonlySet<number> = new Set([
  GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q8_0,
  GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K,
]);
const RESIDENT_CHUNK = 4 << 20;

const blockOf = (type: number): number => TYPE_LAYOUT[type]![0];
const bytesPerElem = (type: number): number => TYPE_LAYOUT[type]![1] / TYPE_LAYOUT[type]![0];
const fits = (type: number, nOut: readonly number[]): boolean => nOut.every((n) => n % blockOf(type) === 0);

function checkColumnType(type: number, what: string): void {
  if (!COLUMN_TYPES.has(type)) {
    throw new ActiveflowError("BAD_ARGUMENT",
      `${what} ${typeName(type)} is not a column type (expected one of ${[...COLUMN_TYPES].map(typeName).join(", ")})`);
  }
}

// Shapes of the four sites, checked to be the same in every layer, and their column types.
function siteShapes(src: GgufFile, nLayer: number, opts: ConvertOptions, sites: readonly SiteName[]): { shapes: SiteShape[]; sourceTypes: Map<SiteName, Set<number>> } {
  const shapes: SiteShape[] = [];
  const sourceTypes = new Map<SiteName, Set<number>>();
  for (const site of sites) {
    const tensors = SITE_TENSORS[site];
    const types = new Set<number>();
    const partTypes: number[] = []; // [layer][tensor]
    let nIn = 0;
    const nOut: number[] = [];
    for (let l = 0; l < nLayer; l++) {
      tensors.forEach((t, ti) => {
        const name = sourceTensorName(l, t);
        const info = findTensor(src, name);
        if (!info) throw new ActiveflowError("MODEL_MISSING_TENSOR", `${src.path}: tensor ${name} is missing (site ${site} needs ${tensors.join(", ")} in every layer)`);
        if (info.dims.length !== 2) {
          throw new ActiveflowError("MODEL_BAD_SHAPE", `${src.path}: tensor ${name} has dims [${info.dims.join(", ")}], expected 2 dims [n_in, n_out]`);
        }
        const [inDim, outDim] = info.dims as [number, number];
        if (l === 0 && ti === 0) nIn = inDim;
        if (l === 0) nOut.push(outDim);
        if (inDim !== nIn || outDim !== nOut[ti]) {
          throw new ActiveflowError("MODEL_BAD_SHAPE",
            `${src.path}: tensor ${name} has dims [${inDim}, ${outDim}], expected [${nIn}, ${nOut[ti]}] like the other ${site} tensors of layer 0`);
        }
        types.add(info.type);
        partTypes.push(info.type);
      });
    }
    let columnType: number;
    const splittable = partTypes.every((t, k) => canSplit(t, nIn, nOut[k % tensors.length]!));
    if (opts.columnType === undefined && opts.keepSourceType !== true && splittable) {
      // The source's codes, kept exactly; its block parameters go to resident scale planes.
      shapes.push({ site, nIn, tensors, nOut, columnType: GgmlType.I8, layout: "split", partTypes });
      sourceTypes.set(site, types);
      continue;
    }
    if (opts.columnType !== undefined) {
      columnType = opts.columnType;
      if (!fits(columnType, nOut)) {
        throw new ActiveflowError("BAD_ARGUMENT",
          `column type ${typeName(columnType)} needs column lengths that are multiples of ${blockOf(columnType)}, but site ${site} has ${nOut.join(", ")}`);
      }
    } else {
      // Mixed source types (e.g. Q4_K_M): the most precise one, so no column loses bits.
      const candidate = [...types].sort((a, b) => bytesPerElem(b) - bytesPerElem(a))[0]!;
      const fallback = opts.fallbackType ?? GgmlType.Q8_0;
      // Requantising a 4-6 bit source into 4-6 bit columns compounds two roundings: on
      // SmolLM2 Q4_1 it cost KL 0.28 and 29 % of top-1 choices at sparsity 0, against
      // < 1 % error for Q8_0 columns. So low-bit sources get Q8_0 columns unless
      // `keepSourceType` (speed work on random weights) asks otherwise.
      const lowBit = bytesPerElem(candidate) < 1;
      const keep = opts.keepSourceType === true || !lowBit;
      columnType = keep && COLUMN_TYPES.has(candidate) && fits(candidate, nOut) ? candidate
        : fits(fallback, nOut) ? fallback : GgmlType.F16;
    }
    shapes.push({ site, nIn, tensors, nOut, columnType, layout: "columns" });
    sourceTypes.set(site, types);
  }
  return { shapes, sourceTypes };
}

// Running CRC-32C over consecutive pages of one extent, fed in chunks of any size.
class PageHasher {
  private crc = 0;
  private fill = 0;
  constructor(private readonly out: Uint32Array, private page: number, private readonly crc32c: Crc32cFn) {}
  update(bytes: Uint8Array): void {
    let o = 0;
    while (o < bytes.length) {
      const n = Math.min(CRC_PAGE_BYTES - this.fill, bytes.length - o);
      this.crc = this.crc32c(bytes.subarray(o, o + n), this.crc);
      this.fill += n;
      o += n;
      if (this.fill === CRC_PAGE_BYTES) this.end();
    }
  }
  // Closes a short last page as the full file page it is: the GGUF padding after an extent
  // is zeros up to the next 4 KiB boundary, and readers check whole pages.
  finish(): void {
    if (this.fill > 0) this.update(new Uint8Array(CRC_PAGE_BYTES - this.fill));
  }
  private end(): void {
    this.out[this.page++] = this.crc;
    this.crc = 0;
    this.fill = 0;
  }
}

export async function readAt(fh: FileHandle, buf: Uint8Array, position: number, path: string): Promise<void> {
  let got = 0;
  while (got < buf.length) {
    const { bytesRead } = await fh.read(buf, got, buf.length - got, position + got);
    if (bytesRead === 0) throw new ActiveflowError("GGUF_TRUNCATED", `${path}: tensor data ends early at offset ${position + got}`);
    got += bytesRead;
  }
}

function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new ActiveflowError("ABORTED", `${what} was aborted`, { cause: signal.reason });
}

// Squared-error sums of one site, for its relative RMS requantisation error.
interface ErrorSum { diff: number; ref: number }

function addError(err: ErrorSum, ref: Float32Array, got: Float32Array): void {
  let diff = 0;
  let sum = 0;
  for (let i = 0; i < ref.length; i++) {
    const a = ref[i]!;
    const d = got[i]! - a;
    diff += d * d;
    sum += a * a;
  }
  err.diff += diff;
  err.ref += sum;
}


// Records of one extent, in bands of input channels (bandRecords).
async function* extentRecords(
  addon: ConversionKernels, fh: FileHandle, src: GgufFile, e: ExtentLayout, crcs: Uint32Array, err: ErrorSum, signal: AbortSignal | undefined,
): AsyncGenerator<Uint8Array> {
  const what = `converting ${src.path}`;
  // The group's source tensors of this site, in record order; released when the extent ends.
  const sources: { info: GgufTensorInfo; bytes: Uint8Array }[] = [];
  for (const p of e.parts) {
    const info = findTensor(src, sourceTensorName(p.layer, p.tensor))!;
    const bytes = new Uint8Array(info.bytes);
    await readAt(fh, bytes, src.dataOffset + info.offset, src.path);
    sources.push({ info, bytes });
    throwIfAborted(signal, what);
  }
  yield* bandRecords(addon, sources, e, e.columnType, e.layout === "split", {
    hasher: new PageHasher(crcs, e.firstPage, (b, seed) => addon.crc32c(b, seed)),
    addError: (ref, got) => addError(err, ref, got),
    throwIfAborted: () => throwIfAborted(signal, what),
  });
}

// The scale plane of one split (layer, tensor): the block parameters of its source rows.
async function scalePlane(addon: ConversionKernels, fh: FileHandle, src: GgufFile, plane: ScalePlane, nIn: number, signal: AbortSignal | undefined): Promise<Uint8Array> {
  const info = findTensor(src, sourceTensorName(plane.layer, plane.tensor))!;
  const bytes = new Uint8Array(info.bytes);
  await readAt(fh, bytes, src.dataOffset + info.offset, src.path);
  throwIfAborted(signal, `converting ${src.path}`);
  return addon.colxSplitScales(info.type, bytes, info.dims[1]!, nIn);
}

async function* residentChunks(fh: FileHandle, src: GgufFile, name: string, signal: AbortSignal | undefined): AsyncGenerator<Uint8Array> {
  const info = findTensor(src, name)!;
  const buf = new Uint8Array(Math.min(RESIDENT_CHUNK, info.bytes));
  for (let o = 0; o < info.bytes; o += buf.length) {
    const part = buf.subarray(0, Math.min(buf.length, info.bytes - o));
    await readAt(fh, part, src.dataOffset + info.offset + o, src.path);
    throwIfAborted(signal, `converting ${src.path}`);
    yield part;
  }
}

// The flash layout `convertToFlash` would write for `src` (no data is read).
export function planFlashLayout(source: GgufFile, options: ConvertOptions = {}): { layout: FlashLayout; sourceTypes: Map<SiteName, Set<number>> } {
  const groupSize = options.groupSize ?? DEFAULT_GROUP_SIZE;
  if (!Number.isInteger(groupSize) || groupSize < 1) {
    throw new ActiveflowError("BAD_ARGUMENT", `group size ${groupSize} must be a positive integer`);
  }
  if (options.columnType !== undefined) checkColumnType(options.columnType, "column type");
  if (options.fallbackType !== undefined) checkColumnType(options.fallbackType, "fallback column type");
  if ([...source.metadata.keys()].some((k) => k.startsWith("activeflow."))) {
    throw new ActiveflowError("BAD_ARGUMENT", `${source.path} is already in the flash layout (it has activeflow.* keys)`);
  }
  // Fused tensors (phi3) become their parts, so every site has its usual tensors.
  const src = splitFusedTensors(source);
  const arch = getString(src, "general.architecture");
  const nLayer = getNumber(src, `${arch}.block_count`);
  // Mixture of experts: attention keeps its dense sites, the experts get their own extents
  // (src/flash/experts.ts); the routers stay resident like norms.
  const ff = getOptionalNumber(src, `${arch}.feed_forward_length`);
  const moe = readMoeConfig(src, arch, ff);
  const experts = moe ? expertShapeOf(src, nLayer, getNumber(src, `${arch}.embedding_length`), moe, options) : undefined;
  const sites: readonly SiteName[] = moe ? MOE_SITES : SITES;
  const { shapes, sourceTypes } = siteShapes(src, nLayer, options, sites);
  const siteNames = new Set<string>([...sites.flatMap((s) => SITE_TENSORS[s]), ...(moe ? [...EXPERT_TENSORS, ...SHARED_EXPERT_TENSORS] : [])]);
  const isSiteWeight = (name: string): boolean => {
    const m = /^blk\.(\d+)\.(\w+)\.weight$/.exec(name);
    return m !== null && Number(m[1]) < nLayer && siteNames.has(m[2]!);
  };
  const resident = src.tensors.filter((t) => !isSiteWeight(t.name)).map((t) => ({ name: t.name, dims: t.dims, type: t.type }));
  return { layout: computeFlashLayout({ nLayer, groupSize, sites: shapes, resident, ...(experts ? { experts } : {}) }), sourceTypes };
}

// Converts the GGUF at `inPath` into the flash layout at `outPath` (atomic: on error or
// abort nothing is left at `outPath`), with a backend's conversion kernels (`addon`: the
// native addon's from src/backends/default.ts, or another backend's).
export async function convertToFlash(addon: ConversionKernels, inPath: string, outPath: string, options: ConvertOptions = {}): Promise<ConvertReport> {
  const started = performance.now();
  if (resolve(inPath) === resolve(outPath)) {
    throw new ActiveflowError("BAD_ARGUMENT", `convert: output ${outPath} is the input model; choose another path`);
  }
  await checkOutputPath(outPath);
  // Partial files of an earlier conversion to the same target whose process was killed.
  await sweepTemps(dirname(resolve(outPath)), `${basename(outPath)}.partial-`);
  const src = splitFusedTensors(await readGguf(inPath));
  const { layout, sourceTypes } = planFlashLayout(src, options);
  const meta = await readTypedMetadata(src);
  const sourceBytes = (await stat(inPath)).size;

  const writerOptions: ConstructorParameters<typeof GgufWriter>[1] = { alignment: FLASH_ALIGNMENT };
  if (options.signal) writerOptions.signal = options.signal;
  // The writer renames its temp file onto `partial`; the quant errors are patched into
  // that file's header and only then is it renamed onto outPath, so outPath stays atomic.
  const partial = `${outPath}.partial-${process.pid}`;
  const untrack = trackTemp(partial);
  const w = new GgufWriter(partial, writerOptions);
  for (const [k, v] of meta) if (k !== "general.alignment") w.set(k, v);
  const version = layout.sites.some((s) => s.layout === "split") ? FLASH_VERSION_SPLIT : FLASH_VERSION_COLUMNS;
  w.set("general.alignment", u32(FLASH_ALIGNMENT))
    .set(KEY.version, u32(version))
    .set(KEY.groupSize, u32(layout.groupSize))
    .set(KEY.sourceName, str(basename(inPath)))
    .set(KEY.sourceBytes, u64(sourceBytes))
    .set(KEY.checksum, str(CHECKSUM_NAME))
    .set(KEY.pageSize, u32(CRC_PAGE_BYTES))
    .set(KEY.headerChecksum, u32(0)) // placeholder, patched last (headerChecksum.ts)
    .set(KEY.sites, strArr(layout.sites.map((s) => s.site)));
  for (const s of layout.sites) {
    w.set(KEY.nIn(s.site), u32(s.nIn))
      .set(KEY.tensors(s.site), strArr(s.tensors))
      .set(KEY.nOut(s.site), u32Arr(s.nOut))
      .set(KEY.columnType(s.site), u32(s.columnType))
      // Placeholder, same size as the final value: the header is written before the data.
      .set(KEY.quantError(s.site), f32(0));
    if (version === FLASH_VERSION_SPLIT) w.set(KEY.columnLayout(s.site), str(s.layout ?? "columns"));
    if (s.layout === "split") w.set(KEY.partTypes(s.site), u32Arr(s.partTypes!));
  }
  const xs = layout.expertShape;
  if (xs) {
    w.set(EXPERT_KEY.count, u32(xs.nExpert))
      .set(EXPERT_KEY.shared, u32(xs.shared ? 1 : 0))
      .set(EXPERT_KEY.nFf, u32(xs.nFf))
      .set(EXPERT_KEY.nFfShared, u32(xs.nFfShared))
      .set(EXPERT_KEY.layout, str(xs.layout))
      .set(EXPERT_KEY.columnType, u32(xs.columnType));
    if (xs.layout === "split") w.set(EXPERT_KEY.partTypes, u32Arr(xs.partTypes!));
  }
  // Quant errors are only known at the end, so they are patched into the header in place.
  w.set(KEY.reserved, arr(GgufValueType.UINT8, new Uint8Array(HEADER_RESERVE_BYTES)));
  for (const t of layout.resident) w.addTensor(t);
  for (const t of layout.scales) w.addTensor(t);
  for (const e of layout.extents) w.addTensor({ name: e.name, dims: e.dims, type: e.columnType });
  const expertList = expertTensors(layout.experts);
  for (const t of expertList) w.addTensor({ name: t.name, dims: t.dims, type: t.type });
  w.addTensor({ name: layout.crc.name, dims: [layout.crc.pages], type: GgmlType.I32 });

  const crcs = new Uint32Array(layout.crc.pages);
  const errors = new Map<SiteName, ErrorSum>(layout.sites.map((s) => [s.site, { diff: 0, ref: 0 }]));
  const expertError: ErrorSum = { diff: 0, ref: 0 };
  const quantError = new Map<SiteName, number>();
  const fh = await open(inPath, "r");
  try {
    const nResident = layout.resident.length;
    const nScales = layout.scales.length;
    const nInOf = new Map(layout.sites.map((x) => [x.site, x.nIn]));
    // Progress per chunk produced (the writer itself reports only per 4 MB flush), over the
    // tensors' bytes without the alignment padding (small scale planes are mostly padding).
    let produced = 0;
    const totalBytes = [...layout.resident, ...layout.scales, ...layout.extents, ...expertList].reduce((n, t) => n + t.bytes, 0) + layout.crc.bytes;
    const helpers: ConvertHelpers = {
      readAt,
      newHasher: (firstPage) => new PageHasher(crcs, firstPage, (b, seed) => addon.crc32c(b, seed)),
      addError: (ref, got) => addError(expertError, ref, got),
      throwIfAborted: () => throwIfAborted(options.signal, `converting ${inPath}`),
    };
    const counted = async function* (chunks: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
      for await (const c of chunks) {
        produced += c.length;
        options.onProgress?.(produced / totalBytes);
        yield c;
      }
    };
    await w.write((t, i) => {
      if (i < nResident) return counted(residentChunks(fh, src, t.name, options.signal));
      const plane = layout.scales[i - nResident];
      if (plane) {
        return counted((async function* () {
          yield await scalePlane(addon, fh, src, plane, nInOf.get(plane.site)!, options.signal);
        })());
      }
      const e = layout.extents[i - nResident - nScales];
      if (e) return counted(extentRecords(addon, fh, src, e, crcs, errors.get(e.site)!, options.signal));
      const x = i - nResident - nScales - layout.extents.length;
      if (x < expertList.length) return counted(expertTensorData(addon, fh, src, helpers, layout.experts, xs!, x));
      return new Uint8Array(crcs.buffer);
    });
    for (const [site, e] of errors) quantError.set(site, e.ref > 0 ? Math.sqrt(e.diff / e.ref) : 0);
    await patchQuantErrors(partial, quantError);
    await patchFileHeaderChecksum(partial);
    throwIfAborted(options.signal, `converting ${inPath}`);
    await rename(partial, outPath);
    options.onProgress?.(1);
  } catch (e) {
    await rm(partial, { force: true });
    throw diskFull(e, outPath);
  } finally {
    untrack();
    await fh.close();
  }

  const residentBytes = layout.resident.reduce((n, t) => n + t.bytes, 0);
  const scaleBytes = layout.scales.reduce((n, t) => n + t.bytes, 0);
  const extentBytes = layout.extents.reduce((n, e) => n + e.bytes, 0);
  return {
    inPath, outPath, groupSize: layout.groupSize, groups: layout.groups, nLayer: layout.nLayer, version,
    sites: layout.sites.map((s) => ({
      site: s.site, nIn: s.nIn, tensors: s.tensors, nOut: s.nOut,
      sourceTypes: [...sourceTypes.get(s.site)!].map(typeName), layout: s.layout ?? "columns", columnType: typeName(s.columnType),
      quantError: quantError.get(s.site)!,
      extentBytes: layout.extents.filter((e) => e.site === s.site).reduce((n, e) => n + e.bytes, 0),
      scaleBytes: layout.scales.filter((p) => p.site === s.site).reduce((n, p) => n + p.bytes, 0),
    })),
    residentBytes, scaleBytes, extentBytes,
    ...(xs ? { experts: { bytes: expertList.reduce((n, t) => n + t.bytes, 0), layout: describeExpertLayout(xs), quantError: expertError.ref > 0 ? Math.sqrt(expertError.diff / expertError.ref) : 0 } } : {}),
    fileBytes: (await stat(outPath)).size,
    seconds: (performance.now() - started) / 1000,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
  };
}

// A missing output directory or an output that is a directory is the user's path, said as
// such before any work (Node's own error would name our temporary file instead).
async function checkOutputPath(outPath: string): Promise<void> {
  const dir = dirname(resolve(outPath));
  const d = await stat(dir).catch(() => undefined);
  if (!d?.isDirectory()) throw new ActiveflowError("BAD_ARGUMENT", `convert: the output's directory ${dir} ${d ? "is not a directory" : "does not exist"}`);
  if ((await stat(outPath).catch(() => undefined))?.isDirectory()) {
    throw new ActiveflowError("BAD_ARGUMENT", `convert: output ${resolve(outPath)} is a directory; give a file name`);
  }
}

// Writes the measured errors over the f32 placeholders of activeflow.quant_error.<site>.
async function patchQuantErrors(path: string, errors: Map<SiteName, number>): Promise<void> {
  const file = await readGguf(path);
  const fh = await open(path, "r+");
  try {
    const header = Buffer.allocUnsafe(file.dataOffset);
    await readAt(fh, header, 0, path);
    for (const [site, value] of errors) {
      // Key as encoded in the header: u64 length, bytes, then the u32 value type.
      const key = Buffer.from(KEY.quantError(site), "utf8");
      const needle = Buffer.alloc(8 + key.length + 4);
      needle.writeBigUInt64LE(BigInt(key.length), 0);
      key.copy(needle, 8);
      needle.writeUInt32LE(GgufValueType.FLOAT32, 8 + key.length);
      const at = header.indexOf(needle);
      if (at < 0) throw new ActiveflowError("GGUF_BAD_VALUE", `${path}: metadata ${KEY.quantError(site)} not found in the header to patch`);
      const v = Buffer.allocUnsafe(4);
      v.writeFloatLE(value);
      await fh.write(v, 0, 4, at + needle.length);
    }
  } finally {
    await fh.close();
  }
}
