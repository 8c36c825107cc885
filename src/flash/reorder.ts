// `activeflow reorder`: rewrites a flash file's extents with their records in a new order
// (hottest channel first, or back to channel order) and stores the order and each record's
// calibrated activity in the header (docs/FLASH_FORMAT.md section 12). Everything else is
// copied byte for byte; the page checksums are recomputed. Atomic: the new file is written
// beside the old one and renamed over it only when complete.
import { open, rename, rm, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import { ActiveflowError, diskFull } from "../errors.js";
import { patchFileHeaderChecksum } from "./headerChecksum.js";
import { GgufWriter, f32Arr, str, u32, u32Arr, type GgufWriteValue } from "../gguf/writer.js";
import { crc32c } from "./crc32c.js";
import {
  CRC_PAGE_BYTES, CRC_TENSOR, FLASH_ALIGNMENT, FLASH_VERSION_COLUMNS, FLASH_VERSION_ORDERED, FLASH_VERSION_SPLIT, KEY, RECORD_ORDERS, SITES,
  type RecordOrder, type SiteName,
} from "./format.js";
import { openFlashModel, type FlashExtent } from "./open.js";
import { readTypedMetadata } from "./typedMetadata.js";
import { syncDir, syncFile } from "../tempFiles.js";


// Calibrated activity per channel: [site] -> [groups][nIn], in channel order (layer visits per
// token that need channel j of the group's extent).
export type ChannelActivity = Map<SiteName, Float64Array>;

export interface ReorderOptions {
  order: RecordOrder;
  signal?: AbortSignal;
  onProgress?: (fraction: number) => void;
}

export interface ReorderReport {
  path: string;
  order: RecordOrder;
  // Per site: the share of records (over all groups) that moved, and the share of the
  // activity the first quarter of each extent now holds (1/4 when the order is random).
  sites: { site: SiteName; moved: number; headQuarterActivity: number }[];
  seconds: number;
}

const COPY_CHUNK = 4 << 20;

// The record order of each extent: hottest channel first (ties by channel), or channel order.
export function recordOrderOf(activity: Float64Array, nIn: number, group: number, order: RecordOrder): Uint32Array {
  const o = new Uint32Array(nIn);
  for (let j = 0; j < nIn; j++) o[j] = j;
  if (order === "identity") return o;
  const base = group * nIn;
  return o.sort((a, b) => activity[base + b]! - activity[base + a]! || a - b);
}

export async function reorderFlash(path: string, activity: ChannelActivity, options: ReorderOptions): Promise<ReorderReport> {
  const started = performance.now();
  if (!RECORD_ORDERS.includes(options.order)) {
    throw new ActiveflowError("BAD_ARGUMENT", `record order must be one of ${RECORD_ORDERS.join(", ")}, got ${String(options.order)}`);
  }
  const fm = await openFlashModel(path);
  for (const s of fm.sites) {
    const a = activity.get(s.site);
    if (!a || a.length !== fm.groups * s.nIn) {
      throw new ActiveflowError("BAD_ARGUMENT", `${path}: activity of ${s.site} holds ${a?.length ?? 0} values, expected ${fm.groups * s.nIn}`);
    }
  }
  // New order per extent (record -> channel) and where each channel sits now.
  const orders = fm.extents.map((e) => recordOrderOf(activity.get(e.site)!, e.nIn, e.group, options.order));
  const meta = await readTypedMetadata(fm.gguf);
  const extra = new Map<string, GgufWriteValue>();
  for (const s of fm.sites) {
    const order = new Uint32Array(fm.groups * s.nIn);
    const freq = new Float32Array(fm.groups * s.nIn);
    const a = activity.get(s.site)!;
    fm.extents.forEach((e, i) => {
      if (e.site !== s.site) return;
      const o = orders[i]!;
      for (let k = 0; k < e.nIn; k++) {
        order[e.group * e.nIn + k] = o[k]!;
        freq[e.group * e.nIn + k] = a[e.group * e.nIn + o[k]!]!;
      }
    });
    if (options.order === "hot") extra.set(KEY.recordOrder(s.site), u32Arr(order));
    extra.set(KEY.recordFreq(s.site), f32Arr(freq));
  }
  // Version 3 marks a record order, so readers that do not know it refuse the file; channel
  // order goes back to 2 (a split site) or 1. A version-1 file gains the per-site layout keys
  // that versions 2 and 3 carry.
  const split = fm.sites.some((s) => s.layout === "split");
  meta.set(KEY.version, u32(options.order === "hot" ? FLASH_VERSION_ORDERED : split ? FLASH_VERSION_SPLIT : FLASH_VERSION_COLUMNS));
  if (options.order === "hot") {
    for (const s of fm.sites) if (!meta.has(KEY.columnLayout(s.site))) extra.set(KEY.columnLayout(s.site), str(s.layout ?? "columns"));
  }

  if (!meta.has(KEY.headerChecksum)) extra.set(KEY.headerChecksum, u32(0)); // patched once written
  const target = `${path}.reorder-${process.pid}`;
  const w = new GgufWriter(target, { alignment: FLASH_ALIGNMENT, ...(options.signal ? { signal: options.signal } : {}) });
  // Old order and frequency keys are replaced; the new ones go before activeflow.reserved,
  // which stays last (section 8).
  const dropped = new Set(SITES.flatMap((s) => [KEY.recordOrder(s), KEY.recordFreq(s)]));
  for (const [k, v] of meta) {
    if (dropped.has(k)) continue;
    if (k === KEY.reserved) for (const [ek, ev] of extra) w.set(ek, ev);
    w.set(k, v);
  }
  if (!meta.has(KEY.reserved)) for (const [ek, ev] of extra) w.set(ek, ev);
  for (const t of fm.gguf.tensors) w.addTensor({ name: t.name, dims: t.dims, type: t.type });

  const byName = new Map(fm.extents.map((e, i) => [e.name, i]));
  const crcs = new Uint32Array(fm.crc.length);
  const total = fm.gguf.tensors.reduce((n, t) => n + t.bytes, 0);
  let done = 0;
  const fh = await open(path, "r");
  try {
    await w.write(async (t) => {
      const info = fm.gguf.tensors.find((x) => x.name === t.name)!;
      if (t.name === CRC_TENSOR) return new Uint8Array(crcs.buffer);
      const i = byName.get(t.name);
      if (i !== undefined) {
        const data = await permutedExtent(fh, fm.extents[i]!, orders[i]!, path);
        pageCrcs(data, crcs, fm.extents[i]!.firstPage);
        done += data.length;
        options.onProgress?.(done / total);
        abortIf(options.signal, path);
        return data;
      }
      return copyChunks(fh, fm.gguf.dataOffset + info.offset, info.bytes, path, options.signal, (n) => {
        done += n;
        options.onProgress?.(done / total);
      });
    });
    abortIf(options.signal, path);
    await patchFileHeaderChecksum(target);
    await syncFile(target);
    await rename(target, path);
    await syncDir(dirname(path));
  } catch (e) {
    await rm(target, { force: true });
    throw diskFull(e, path);
  } finally {
    await fh.close();
  }

  const sites = fm.sites.map((s) => {
    let moved = 0;
    let head = 0;
    let all = 0;
    fm.extents.forEach((e, i) => {
      if (e.site !== s.site) return;
      const o = orders[i]!;
      const a = activity.get(s.site)!;
      const before = e.recordOrder;
      for (let k = 0; k < e.nIn; k++) {
        if (o[k] !== (before ? before[k] : k)) moved++;
        const v = a[e.group * e.nIn + o[k]!]!;
        all += v;
        if (k < e.nIn / 4) head += v;
      }
    });
    return { site: s.site, moved: moved / (fm.groups * s.nIn), headQuarterActivity: all > 0 ? head / all : 0 };
  });
  return { path, order: options.order, sites, seconds: (performance.now() - started) / 1000 };
}

// The extent's records in the new order (record k = channel order[k]), read from wherever the
// file holds each channel now.
async function permutedExtent(fh: FileHandle, e: FlashExtent, order: Uint32Array, path: string): Promise<Uint8Array> {
  const old = new Uint8Array(e.bytes);
  await readAt(fh, old, e.offset, path);
  const oldRecordOf = new Int32Array(e.nIn);
  for (let k = 0; k < e.nIn; k++) oldRecordOf[e.recordOrder ? e.recordOrder[k]! : k] = k;
  const out = new Uint8Array(e.bytes);
  const rb = e.recordBytes;
  for (let k = 0; k < e.nIn; k++) {
    const from = oldRecordOf[order[k]!]! * rb;
    out.set(old.subarray(from, from + rb), k * rb);
  }
  return out;
}

// CRC-32C of each 4 KiB page of an extent, the last page zero-padded as the file pads it.
function pageCrcs(data: Uint8Array, crcs: Uint32Array, firstPage: number): void {
  const pages = Math.ceil(data.length / CRC_PAGE_BYTES);
  for (let p = 0; p < pages; p++) {
    const start = p * CRC_PAGE_BYTES;
    const end = Math.min(data.length, start + CRC_PAGE_BYTES);
    let c = crc32c(data.subarray(start, end));
    if (end - start < CRC_PAGE_BYTES) c = crc32c(new Uint8Array(CRC_PAGE_BYTES - (end - start)), c);
    crcs[firstPage + p] = c;
  }
}

async function* copyChunks(fh: FileHandle, position: number, bytes: number, path: string, signal: AbortSignal | undefined,
  onBytes: (n: number) => void): AsyncGenerator<Uint8Array> {
  for (let o = 0; o < bytes; o += COPY_CHUNK) {
    const part = new Uint8Array(Math.min(COPY_CHUNK, bytes - o));
    await readAt(fh, part, position + o, path);
    abortIf(signal, path);
    onBytes(part.length);
    yield part;
  }
}

async function readAt(fh: FileHandle, buf: Uint8Array, position: number, path: string): Promise<void> {
  let got = 0;
  while (got < buf.length) {
    const { bytesRead } = await fh.read(buf, got, buf.length - got, position + got);
    if (bytesRead === 0) throw new ActiveflowError("GGUF_TRUNCATED", `${path}: data ends early at offset ${position + got}`);
    got += bytesRead;
  }
}

function abortIf(signal: AbortSignal | undefined, path: string): void {
  if (signal?.aborted) throw new ActiveflowError("ABORTED", `reordering ${path} was aborted`, { cause: signal.reason });
}
