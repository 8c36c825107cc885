// The source model's metadata with each value's GGUF type, so the converter can copy keys
// unchanged: readGguf() returns plain JS values, which cannot tell a u32 from an f32 or an
// i32. This walks the key/value section once more and pairs each key with its type tags.
import { open } from "node:fs/promises";
import { ActiveflowError } from "../errors.js";
import { GgufValueType, type GgufFile, type GgufValue } from "../gguf/types.js";
import type { GgufWriteValue } from "../gguf/writer.js";

const SCALAR_BYTES: Partial<Record<number, number>> = {
  [GgufValueType.UINT8]: 1, [GgufValueType.INT8]: 1, [GgufValueType.BOOL]: 1,
  [GgufValueType.UINT16]: 2, [GgufValueType.INT16]: 2,
  [GgufValueType.UINT32]: 4, [GgufValueType.INT32]: 4, [GgufValueType.FLOAT32]: 4,
  [GgufValueType.UINT64]: 8, [GgufValueType.INT64]: 8, [GgufValueType.FLOAT64]: 8,
};

// Type tags of one value: a scalar type, or an array's element type and (for nested
// arrays) the tags of each element.
type Tags = { type: number } | { type: GgufValueType.ARRAY; elem: number; items?: Tags[] };

class Cursor {
  pos = 24; // after magic, version, tensor count and key/value count
  constructor(private readonly buf: Buffer, private readonly path: string) {}
  need(n: number): void {
    if (this.pos + n > this.buf.length) {
      throw new ActiveflowError("GGUF_TRUNCATED", `${this.path}: metadata runs past the header at offset ${this.pos}`);
    }
  }
  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }
  u64(): number {
    this.need(8);
    const v = Number(this.buf.readBigUInt64LE(this.pos));
    this.pos += 8;
    return v;
  }
  string(): string {
    const n = this.u64();
    this.need(n);
    const s = this.buf.toString("utf8", this.pos, this.pos + n);
    this.pos += n;
    return s;
  }
  skip(n: number): void {
    this.need(n);
    this.pos += n;
  }
}

function readTags(c: Cursor, type: number): Tags {
  const size = SCALAR_BYTES[type];
  if (size !== undefined) {
    c.skip(size);
    return { type };
  }
  if (type === GgufValueType.STRING) {
    c.skip(c.u64());
    return { type };
  }
  const elem = c.u32();
  const n = c.u64();
  const elemSize = SCALAR_BYTES[elem];
  if (elemSize !== undefined) {
    c.skip(n * elemSize);
    return { type: GgufValueType.ARRAY, elem };
  }
  if (elem === GgufValueType.STRING) {
    for (let i = 0; i < n; i++) c.skip(c.u64());
    return { type: GgufValueType.ARRAY, elem };
  }
  const items: Tags[] = [];
  for (let i = 0; i < n; i++) items.push(readTags(c, elem));
  return { type: GgufValueType.ARRAY, elem, items };
}

function toWriteValue(v: GgufValue, tags: Tags): GgufWriteValue {
  if (tags.type !== GgufValueType.ARRAY || !("elem" in tags)) return { type: tags.type, value: v } as GgufWriteValue;
  if (tags.items) {
    const list = v as GgufValue[];
    return { type: GgufValueType.ARRAY, elemType: tags.elem, value: list.map((x, i) => toWriteValue(x, tags.items![i]!)) };
  }
  return { type: GgufValueType.ARRAY, elemType: tags.elem, value: v as ArrayLike<number> };
}

// Byte span of each metadata entry in `header` (the file's first bytes, from offset 0), in
// file order, and where the key/value section ends.
export function metadataSpans(header: Buffer, path: string, count: number): { spans: { key: string; start: number; end: number }[]; end: number } {
  const c = new Cursor(header, path);
  const spans: { key: string; start: number; end: number }[] = [];
  for (let i = 0; i < count; i++) {
    const start = c.pos;
    const key = c.string();
    readTags(c, c.u32());
    spans.push({ key, start, end: c.pos });
  }
  return { spans, end: c.pos };
}

// Every metadata entry of `file` (as read by readGguf) with its GGUF type, in file order.
export async function readTypedMetadata(file: GgufFile): Promise<Map<string, GgufWriteValue>> {
  const fh = await open(file.path, "r");
  let header: Buffer;
  try {
    // The key/value section ends before the tensor data starts.
    header = Buffer.allocUnsafe(file.dataOffset);
    const { bytesRead } = await fh.read(header, 0, header.length, 0);
    header = header.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
  const c = new Cursor(header, file.path);
  const out = new Map<string, GgufWriteValue>();
  for (let i = 0; i < file.metadata.size; i++) {
    const key = c.string();
    const tags = readTags(c, c.u32());
    const value = file.metadata.get(key);
    if (value === undefined) {
      throw new ActiveflowError("GGUF_BAD_VALUE", `${file.path}: metadata key ${key} at entry #${i} was not in the parsed header`);
    }
    out.set(key, toWriteValue(value, tags));
  }
  return out;
}
