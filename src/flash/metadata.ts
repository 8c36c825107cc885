// Adds or replaces metadata keys of a flash file (docs/FLASH_FORMAT.md section 8): the new
// key/value bytes are paid for by shrinking activeflow.reserved, so the tensor infos and every
// tensor's data stay where they are. Atomic: the header is patched in a clone of the file
// (a reflink where the filesystem has them, else a byte copy), which then replaces the file by
// rename, so an interrupted update leaves the old file, never a torn header. Used by
// `calibrate` for activeflow.thresholds.*.
import { constants } from "node:fs";
import { copyFile, open, rename, stat, unlink } from "node:fs/promises";
import { dirname } from "node:path";
import { ActiveflowError } from "../errors.js";
import { readGguf } from "../gguf/reader.js";
import { GgufValueType } from "../gguf/types.js";
import { arr, encodeGgufScalar, type GgufWriteValue } from "../gguf/writer.js";
import { KEY } from "./format.js";
import { checkHeaderChecksum, headerChecksum, headerChecksumAt } from "./headerChecksum.js";
import { metadataSpans } from "./typedMetadata.js";
import { syncDir, trackTemp } from "../tempFiles.js";

const SCALAR_BYTES: Partial<Record<number, number>> = {
  [GgufValueType.UINT8]: 1, [GgufValueType.INT8]: 1, [GgufValueType.BOOL]: 1,
  [GgufValueType.UINT16]: 2, [GgufValueType.INT16]: 2,
  [GgufValueType.UINT32]: 4, [GgufValueType.INT32]: 4, [GgufValueType.FLOAT32]: 4,
  [GgufValueType.UINT64]: 8, [GgufValueType.INT64]: 8, [GgufValueType.FLOAT64]: 8,
};

function scalar(type: number, v: unknown, key: string): Buffer {
  if (SCALAR_BYTES[type] === undefined) throw new ActiveflowError("BAD_ARGUMENT", `metadata ${key}: value type ${type} is not a scalar`);
  return encodeGgufScalar(type, v as number | bigint | boolean);
}

const u32 = (n: number): Buffer => scalar(GgufValueType.UINT32, n, "");
const u64 = (n: number): Buffer => scalar(GgufValueType.UINT64, n, "");
const gstr = (s: string): Buffer => {
  const b = Buffer.from(s, "utf8");
  return Buffer.concat([u64(b.length), b]);
};

// GGUF bytes of a value (with its type tag when `tagged`), as GgufWriter writes them.
function encodeValue(key: string, v: GgufWriteValue, tagged: boolean): Buffer {
  const parts: Buffer[] = tagged ? [u32(v.type)] : [];
  if (v.type === GgufValueType.STRING) parts.push(gstr(v.value));
  else if (v.type === GgufValueType.ARRAY) {
    const items = v.value as ArrayLike<unknown>;
    parts.push(u32(v.elemType), u64(items.length));
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      if (v.elemType === GgufValueType.STRING) parts.push(gstr(String(item)));
      else if (v.elemType === GgufValueType.ARRAY) parts.push(encodeValue(`${key}[${i}]`, item as GgufWriteValue, false));
      else parts.push(scalar(v.elemType, item, key));
    }
  } else parts.push(scalar(v.type, v.value, key));
  return Buffer.concat(parts);
}

const encodeEntry = (key: string, v: GgufWriteValue): Buffer => Buffer.concat([gstr(key), encodeValue(key, v, true)]);

// Sets `entries` (new keys are appended, existing ones replaced where they are) and shrinks
// activeflow.reserved by the bytes this adds. Returns the room left. Throws BAD_ARGUMENT,
// leaving the file untouched, when the room is too small or a key is the reserve itself.
export async function updateFlashMetadata(path: string, entries: ReadonlyMap<string, GgufWriteValue>): Promise<{ roomLeft: number }> {
  if (entries.has(KEY.reserved) || entries.has("general.alignment")) {
    throw new ActiveflowError("BAD_ARGUMENT", `${path}: ${KEY.reserved} and general.alignment cannot be set in place`);
  }
  const file = await readGguf(path);
  const fh = await open(path, "r");
  let kv: Buffer;
  let room: number;
  try {
    const header = Buffer.allocUnsafe(file.dataOffset);
    const { bytesRead } = await fh.read(header, 0, header.length, 0);
    // A damaged header must not be blessed with a fresh checksum.
    checkHeaderChecksum(header.subarray(0, bytesRead), path, file.metadata.size);
    const { spans, end } = metadataSpans(header.subarray(0, bytesRead), path, file.metadata.size);
    const reserve = spans.find((s) => s.key === KEY.reserved);
    if (!reserve) {
      throw new ActiveflowError("BAD_ARGUMENT", `${path}: no ${KEY.reserved} header room (not a flash file, or written by another tool); rewrite the file instead`);
    }
    const kept: Buffer[] = [];
    for (const s of spans) {
      if (s.key === KEY.reserved) continue;
      const v = entries.get(s.key);
      kept.push(v ? encodeEntry(s.key, v) : header.subarray(s.start, s.end));
    }
    for (const [k, v] of entries) if (!file.metadata.has(k)) kept.push(encodeEntry(k, v));
    const used = kept.reduce((n, b) => n + b.length, 0);
    // The reserve entry without its bytes: key, type, element type, count.
    const reserveFixed = encodeEntry(KEY.reserved, arr(GgufValueType.UINT8, new Uint8Array(0))).length;
    room = end - 24 - used - reserveFixed;
    if (room < 0) {
      throw new ActiveflowError("BAD_ARGUMENT",
        `${path}: the new metadata needs ${-room} bytes more than the ${reserve.end - reserve.start - reserveFixed}-byte ${KEY.reserved} room; rewrite the file instead`);
    }
    kv = Buffer.concat([u64(kept.length + 1), ...kept, encodeEntry(KEY.reserved, arr(GgufValueType.UINT8, new Uint8Array(room)))]);
    // The new header's checksum, over the header as it will be on disk.
    const next = Buffer.concat([header.subarray(0, 16), kv, header.subarray(16 + kv.length, bytesRead)]);
    const at = headerChecksumAt(next, path, kept.length + 1);
    if (at !== undefined) kv.writeUInt32LE(headerChecksum(next, at), at - 16);
  } finally {
    await fh.close();
  }
  // The key/value count and the whole key/value section, [16, end), patched in a clone.
  const tmp = `${path}.meta-${process.pid}.tmp`;
  const untrack = trackTemp(tmp);
  try {
    await copyFile(path, tmp, constants.COPYFILE_FICLONE);
    const out = await open(tmp, "r+");
    try {
      await out.write(kv, 0, kv.length, 16);
      await out.sync();
    } finally {
      await out.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    if ((e as NodeJS.ErrnoException).code === "ENOSPC") {
      // Without reflinks (ext4) the clone is a full copy: the file's own size must be free.
      const { size } = await stat(path);
      throw new ActiveflowError("DISK_FULL", `${path}: the disk is full: the header update writes a temporary copy of the file (${(size / 2 ** 30).toFixed(2)} GiB free needed in ${dirname(path)}); the file is unchanged`, { cause: e });
    }
    throw e;
  } finally {
    untrack();
  }
  await syncDir(dirname(path));
  return { roomLeft: room };
}
