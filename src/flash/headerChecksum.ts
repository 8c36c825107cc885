// The header checksum (docs/FLASH_FORMAT.md section 6): CRC-32C of a flash file's bytes
// [0, data offset) (magic, counts, every key/value, the tensor infos, the padding) with the
// checksum's own four value bytes counted as zeros. The page checksums cover only the extents,
// so without it a flipped byte in a metadata value (rope base, head count, a threshold) would
// change the model without a word. Writers put a placeholder u32 in and patch it last.
import { open, type FileHandle } from "node:fs/promises";
import { ActiveflowError } from "../errors.js";
import { readGguf } from "../gguf/reader.js";
import { GgufValueType } from "../gguf/types.js";
import { crc32c } from "./crc32c.js";
import { KEY } from "./format.js";
import { metadataSpans } from "./typedMetadata.js";

// Byte offset in `header` of the checksum's u32 value, or undefined when the file has none.
export function headerChecksumAt(header: Buffer, path: string, kvCount: number): number | undefined {
  const span = metadataSpans(header, path, kvCount).spans.find((s) => s.key === KEY.headerChecksum);
  if (span === undefined) return undefined;
  const type = header.readUInt32LE(span.start + 8 + Buffer.byteLength(KEY.headerChecksum));
  if (type !== GgufValueType.UINT32) {
    throw new ActiveflowError("GGUF_BAD_VALUE", `${path}: metadata ${KEY.headerChecksum} has value type ${type}, expected u32 (${GgufValueType.UINT32})`);
  }
  return span.end - 4;
}

// The checksum of `header` (the whole [0, data offset)), its value bytes at `at` read as zeros.
export function headerChecksum(header: Uint8Array, at: number): number {
  const zeros = new Uint8Array(4);
  return crc32c(header.subarray(at + 4), crc32c(zeros, crc32c(header.subarray(0, at))));
}

// Writes the header checksum of a finished file (not yet renamed into place) into its placeholder.
export async function patchFileHeaderChecksum(path: string): Promise<void> {
  const file = await readGguf(path);
  const fh = await open(path, "r+");
  try {
    await patchHeaderChecksum(fh, path, file.dataOffset, file.metadata.size);
  } finally {
    await fh.close();
  }
}

async function patchHeaderChecksum(fh: FileHandle, path: string, dataOffset: number, kvCount: number): Promise<void> {
  const header = Buffer.alloc(dataOffset);
  const { bytesRead } = await fh.read(header, 0, dataOffset, 0);
  if (bytesRead !== dataOffset) throw new ActiveflowError("GGUF_TRUNCATED", `${path}: ${bytesRead} header bytes, expected ${dataOffset}`);
  const at = headerChecksumAt(header, path, kvCount);
  if (at === undefined) throw new ActiveflowError("GGUF_BAD_VALUE", `${path}: no ${KEY.headerChecksum} placeholder to patch`);
  const value = Buffer.alloc(4);
  value.writeUInt32LE(headerChecksum(header, at));
  await fh.write(value, 0, 4, at);
}

// Throws FLASH_CHECKSUM when `header` does not match its checksum; a file without one passes.
export function checkHeaderChecksum(header: Buffer, path: string, kvCount: number): void {
  const at = headerChecksumAt(header, path, kvCount);
  if (at === undefined) return;
  const stored = header.readUInt32LE(at);
  const computed = headerChecksum(header, at);
  if (stored !== computed) {
    throw new ActiveflowError("FLASH_CHECKSUM",
      `${path}: the header (bytes 0-${header.length - 1}: metadata, thresholds, tensor table) does not match its checksum ` +
      `${KEY.headerChecksum} (stored 0x${stored.toString(16).padStart(8, "0")}, computed 0x${computed.toString(16).padStart(8, "0")}); the file is damaged: convert the model again`);
  }
}
