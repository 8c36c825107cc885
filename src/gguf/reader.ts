// Reads a GGUF file's header (metadata and tensor infos) without touching tensor data.
// Choices: 64-bit ints come back as number when |v| <= Number.MAX_SAFE_INTEGER, else as
// bigint; numeric arrays of more than TYPED_ARRAY_MIN elements of f32/i32/u32 come back as
// Float32Array/Int32Array/Uint32Array (copies, host little-endian), smaller ones as number[].
// Every length is checked against the bytes left in the file before anything is allocated.
import { open, stat, type FileHandle } from "node:fs/promises";
import { ActiveflowError } from "../errors.js";
import {
  GgufValueType,
  SUPPORTED_TYPES,
  TYPE_LAYOUT,
  typeName,
  type GgufFile,
  type GgufTensorInfo,
  type GgufValue,
} from "./types.js";

const MAGIC = "GGUF";
export const DEFAULT_ALIGNMENT = 32;
export const TYPED_ARRAY_MIN = 64;
// GGML_MAX_DIMS in ggml.
const MAX_DIMS = 4;
// Smallest encodings, used to reject counts the remaining bytes cannot hold.
const MIN_KV_BYTES = 8 + 4 + 1; // key length, value type, one-byte value
const MIN_TENSOR_INFO_BYTES = 8 + 4 + 8 + 4 + 8; // name length, n_dims, one dim, type, offset

// Bytes of one element of each fixed-size value type.
const SCALAR_SIZE: Partial<Record<GgufValueType, number>> = {
  [GgufValueType.UINT8]: 1, [GgufValueType.INT8]: 1, [GgufValueType.BOOL]: 1,
  [GgufValueType.UINT16]: 2, [GgufValueType.INT16]: 2,
  [GgufValueType.UINT32]: 4, [GgufValueType.INT32]: 4, [GgufValueType.FLOAT32]: 4,
  [GgufValueType.UINT64]: 8, [GgufValueType.INT64]: 8, [GgufValueType.FLOAT64]: 8,
};

// Names of GGML types we do not run, so an unknown-type error says what the file holds.
const OTHER_GGML_TYPES: Record<number, string> = {
  6: "Q5_0", 7: "Q5_1", 9: "Q8_1", 10: "Q2_K", 11: "Q3_K", 15: "Q8_K", 16: "IQ2_XXS",
  17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S",
  23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M",
  34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4",
};

function fail(code: ConstructorParameters<typeof ActiveflowError>[0], path: string, msg: string): never {
  throw new ActiveflowError(code, `${path}: ${msg}`);
}

const CHUNK = 1 << 20;

class ByteSource {
  // The window: a prefix of `store`, holding the file from bufStart.
  private buf: Buffer = Buffer.alloc(0);
  private store: Buffer = this.buf;
  // Absolute file offset of buf[0].
  private bufStart = 0;
  // Absolute file offset of the next unread byte.
  pos = 0;

  constructor(
    private readonly fh: FileHandle,
    readonly path: string,
    readonly fileSize: number,
  ) {}

  get remaining(): number {
    return this.fileSize - this.pos;
  }

  // True when n bytes at pos are already in the window (the fast, synchronous path).
  has(n: number): boolean {
    return this.pos + n <= this.bufStart + this.buf.length;
  }

  // Makes n bytes at pos readable; `field` names what is being read for the error message.
  async fill(n: number, field: string): Promise<void> {
    if (this.has(n)) return;
    if (n > this.remaining) {
      throw new ActiveflowError(
        "GGUF_TRUNCATED",
        `${this.path}: truncated GGUF header: ${field} needs ${n} bytes at offset ${this.pos} but the file is ${this.fileSize} bytes`,
      );
    }
    const want = Math.min(Math.max(n, CHUNK), this.remaining);
    // Nothing to keep once pos has been skipped past the window.
    const keep = Math.max(0, this.bufStart + this.buf.length - this.pos);
    // One window buffer for the whole header (values are copied out of it): a new megabyte per
    // fill would be garbage outside the JS heap until a collection happens to free it.
    let next = this.store;
    if (next.length < want) {
      next = Buffer.allocUnsafe(want);
      if (keep > 0) this.buf.copy(next, 0, this.pos - this.bufStart);
      this.store = next;
    } else if (keep > 0) {
      next.copyWithin(0, this.pos - this.bufStart, this.buf.length); // buf is store's prefix
    }
    let got = keep;
    while (got < want) {
      const { bytesRead } = await this.fh.read(next, got, want - got, this.pos + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    if (got < n) {
      throw new ActiveflowError(
        "GGUF_TRUNCATED",
        `${this.path}: truncated GGUF header: ${field} at offset ${this.pos} (file shrank while reading)`,
      );
    }
    this.buf = next.subarray(0, got);
    this.bufStart = this.pos;
  }

  // Moves past n bytes without reading them (an omitted value); `field` names them for the error.
  skip(n: number, field: string): void {
    if (n > this.remaining) {
      throw new ActiveflowError(
        "GGUF_TRUNCATED",
        `${this.path}: truncated GGUF header: ${field} needs ${n} bytes at offset ${this.pos} but the file is ${this.fileSize} bytes`,
      );
    }
    this.pos += n;
  }

  // The synchronous readers below require a preceding has()/fill() for their size.
  private at(): number {
    return this.pos - this.bufStart;
  }

  u8(): number {
    const v = this.buf[this.at()]!;
    this.pos += 1;
    return v;
  }
  u32(): number {
    const v = this.buf.readUInt32LE(this.at());
    this.pos += 4;
    return v;
  }
  // u64 as a number when it fits in 2^53, else a bigint.
  u64(): number | bigint {
    const i = this.at();
    const lo = this.buf.readUInt32LE(i);
    const hi = this.buf.readUInt32LE(i + 4);
    this.pos += 8;
    if (hi < 0x200000) return hi * 0x100000000 + lo;
    return (BigInt(hi) << 32n) | BigInt(lo);
  }
  i64(): number | bigint {
    const v = this.buf.readBigInt64LE(this.at());
    this.pos += 8;
    return v >= -9007199254740991n && v <= 9007199254740991n ? Number(v) : v;
  }
  // Reads one scalar of a fixed-size numeric GGUF type.
  scalar(kind: "i8" | "u16" | "i16" | "i32" | "f32" | "f64"): number {
    const i = this.at();
    const b = this.buf;
    let v: number;
    switch (kind) {
      case "i8": v = b.readInt8(i); this.pos += 1; break;
      case "u16": v = b.readUInt16LE(i); this.pos += 2; break;
      case "i16": v = b.readInt16LE(i); this.pos += 2; break;
      case "i32": v = b.readInt32LE(i); this.pos += 4; break;
      case "f32": v = b.readFloatLE(i); this.pos += 4; break;
      case "f64": v = b.readDoubleLE(i); this.pos += 8; break;
    }
    return v;
  }
  utf8(n: number): string {
    const i = this.at();
    const s = this.buf.toString("utf8", i, i + n);
    this.pos += n;
    return s;
  }
  // A copy of n bytes (so typed arrays are aligned and do not pin the window).
  bytes(n: number): Uint8Array {
    const i = this.at();
    const out = new Uint8Array(n);
    out.set(this.buf.subarray(i, i + n));
    this.pos += n;
    return out;
  }
  // The first up-to-n bytes of the file window, for the bad-magic message.
  peek(n: number): Buffer {
    const i = this.at();
    return this.buf.subarray(i, Math.min(i + n, this.buf.length));
  }
}

// Reads a GGUF length/count (u64) and rejects one that `minBytesEach` elements could not
// fit in the rest of the file, so a corrupt count can neither allocate nor loop for long.
async function readCount(src: ByteSource, what: string, minBytesEach: number): Promise<number> {
  const at = src.pos;
  await src.fill(8, what);
  const n = src.u64();
  const left = src.remaining;
  if (typeof n === "bigint" || n * minBytesEach > left) {
    fail("GGUF_BAD_COUNT", src.path,
      `${what} is ${n} at offset ${at}, but only ${left} bytes remain in the ${src.fileSize}-byte file`);
  }
  return n;
}

async function readString(src: ByteSource, what: string): Promise<string> {
  const n = await readCount(src, `length of ${what}`, 1);
  await src.fill(n, what);
  return src.utf8(n);
}

// One scalar of `type`; the caller has made its bytes readable.
function readScalar(src: ByteSource, type: GgufValueType): GgufValue {
  switch (type) {
    case GgufValueType.UINT8: return src.u8();
    case GgufValueType.INT8: return src.scalar("i8");
    case GgufValueType.UINT16: return src.scalar("u16");
    case GgufValueType.INT16: return src.scalar("i16");
    case GgufValueType.UINT32: return src.u32();
    case GgufValueType.INT32: return src.scalar("i32");
    case GgufValueType.FLOAT32: return src.scalar("f32");
    case GgufValueType.BOOL: return src.u8() !== 0;
    case GgufValueType.UINT64: return src.u64();
    case GgufValueType.INT64: return src.i64();
    case GgufValueType.FLOAT64: return src.scalar("f64");
    default: throw new Error(`not a scalar type ${type}`);
  }
}

async function readValue(src: ByteSource, type: number, key: string, depth: number, keep: boolean): Promise<GgufValue> {
  const size = SCALAR_SIZE[type as GgufValueType];
  if (size !== undefined) {
    await src.fill(size, `value of ${key}`);
    return readScalar(src, type);
  }
  if (type === GgufValueType.STRING) return readString(src, `string value of ${key}`);
  if (type === GgufValueType.ARRAY) return readArray(src, key, depth, keep);
  return fail("GGUF_BAD_VALUE", src.path, `key ${key} has unknown value type ${type} (expected 0..12) before offset ${src.pos}`);
}

// With keep false the elements are checked and skipped, not built (the value is left out).
async function readArray(src: ByteSource, key: string, depth: number, keep: boolean): Promise<GgufValue> {
  if (depth > 8) fail("GGUF_BAD_VALUE", src.path, `key ${key}: arrays nested more than 8 deep at offset ${src.pos}`);
  await src.fill(4, `array element type of ${key}`);
  const elemType = src.u32();
  const elemSize = SCALAR_SIZE[elemType as GgufValueType];
  const minEach = elemSize ?? (elemType === GgufValueType.STRING ? 8 : 12);
  if (elemSize === undefined && elemType !== GgufValueType.STRING && elemType !== GgufValueType.ARRAY) {
    fail("GGUF_BAD_VALUE", src.path, `key ${key} is an array of unknown value type ${elemType} (expected 0..12)`);
  }
  const n = await readCount(src, `element count of array ${key}`, minEach);
  if (elemSize !== undefined && !keep) {
    src.skip(n * elemSize, `elements of array ${key}`);
    return [];
  }
  if (elemSize !== undefined) {
    await src.fill(n * elemSize, `elements of array ${key}`);
    if (n > TYPED_ARRAY_MIN) {
      if (elemType === GgufValueType.FLOAT32) return new Float32Array(src.bytes(n * 4).buffer);
      if (elemType === GgufValueType.INT32) return new Int32Array(src.bytes(n * 4).buffer);
      if (elemType === GgufValueType.UINT32) return new Uint32Array(src.bytes(n * 4).buffer);
    }
    const out: GgufValue[] = new Array(n);
    for (let i = 0; i < n; i++) out[i] = readScalar(src, elemType);
    return out;
  }
  const out: GgufValue[] = keep ? new Array(n) : [];
  if (elemType === GgufValueType.STRING) {
    // Vocab arrays hold 100k+ strings: stay on the synchronous path while the window has them.
    for (let i = 0; i < n; i++) {
      if (!src.has(8)) await src.fill(8, `length of ${key}[${i}]`);
      const at = src.pos;
      const len = src.u64();
      if (typeof len === "bigint" || len > src.remaining) {
        fail("GGUF_BAD_COUNT", src.path,
          `length of ${key}[${i}] is ${len} at offset ${at}, but only ${src.remaining} bytes remain in the ${src.fileSize}-byte file`);
      }
      if (!keep) src.skip(len, `${key}[${i}]`);
      else {
        if (!src.has(len)) await src.fill(len, `${key}[${i}]`);
        out[i] = src.utf8(len);
      }
    }
    return out;
  }
  for (let i = 0; i < n; i++) {
    const inner = await readArray(src, `${key}[${i}]`, depth + 1, keep);
    if (keep) out[i] = inner;
  }
  return out;
}

function describeMagic(b: Buffer): string {
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join(" ");
  const text = [...b].map((x) => (x >= 0x20 && x < 0x7f ? String.fromCharCode(x) : ".")).join("");
  return `${hex} ("${text}")`;
}

async function readTensorInfo(src: ByteSource, index: number): Promise<{ info: GgufTensorInfo; at: number }> {
  const at = src.pos;
  const name = await readString(src, `name of tensor #${index}`);
  await src.fill(4, `n_dims of tensor ${name}`);
  const nDims = src.u32();
  if (nDims < 1 || nDims > MAX_DIMS) {
    fail("GGUF_BAD_TENSOR", src.path, `tensor ${name} has ${nDims} dims at offset ${at} (expected 1..${MAX_DIMS})`);
  }
  await src.fill(8 * nDims + 4 + 8, `dims, type and offset of tensor ${name}`);
  const dims: number[] = [];
  let elements = 1;
  for (let d = 0; d < nDims; d++) {
    const v = src.u64();
    if (typeof v === "bigint" || v === 0) {
      fail("GGUF_BAD_TENSOR", src.path,
        `tensor ${name} dim ${d} is ${v === 0 ? 0 : BigInt.asIntN(64, v as bigint)} (expected a positive size)`);
    }
    elements *= v;
    if (!Number.isSafeInteger(elements)) {
      fail("GGUF_BAD_TENSOR", src.path, `tensor ${name} dims [${[...dims, v].join(", ")}...] overflow the element count`);
    }
    dims.push(v);
  }
  const type = src.u32();
  const offset = src.u64();
  if (!SUPPORTED_TYPES.has(type)) {
    const known = OTHER_GGML_TYPES[type];
    fail("GGUF_UNKNOWN_TYPE", src.path,
      `tensor ${name} has type id ${type}${known ? ` (${known})` : ""}, which is not supported (supported: ${[...SUPPORTED_TYPES].map(typeName).join(", ")})`);
  }
  const [blockElems, blockBytes] = TYPE_LAYOUT[type]!;
  if (dims[0]! % blockElems !== 0) {
    fail("GGUF_BAD_TENSOR", src.path,
      `tensor ${name} row length ${dims[0]} is not a multiple of the ${typeName(type)} block size ${blockElems}`);
  }
  if (typeof offset === "bigint") {
    fail("GGUF_BAD_TENSOR", src.path, `tensor ${name} data offset ${offset} is beyond any file`);
  }
  return { info: { name, dims, type, offset, bytes: (elements / blockElems) * blockBytes }, at };
}

// Checks tensor offsets: aligned, inside the file, and not overlapping one another.
function checkLayout(path: string, f: GgufFile): void {
  const names = new Set<string>();
  for (const t of f.tensors) {
    if (names.has(t.name)) fail("GGUF_BAD_TENSOR", path, `tensor name ${t.name} appears twice`);
    names.add(t.name);
    if (t.offset % f.alignment !== 0) {
      fail("GGUF_BAD_TENSOR", path, `tensor ${t.name} data offset ${t.offset} is not a multiple of the alignment ${f.alignment}`);
    }
    const end = f.dataOffset + t.offset + t.bytes;
    if (end > f.fileSize) {
      fail("GGUF_BAD_TENSOR", path,
        `tensor ${t.name} (${t.bytes} bytes at data offset ${t.offset}, file offset ${f.dataOffset + t.offset}) runs past the end of the ${f.fileSize}-byte file`);
    }
  }
  const byOffset = [...f.tensors].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < byOffset.length; i++) {
    const prev = byOffset[i - 1]!;
    const cur = byOffset[i]!;
    if (prev.offset + prev.bytes > cur.offset) {
      fail("GGUF_BAD_TENSOR", path,
        `tensor ${cur.name} at data offset ${cur.offset} overlaps tensor ${prev.name} (data offset ${prev.offset}, ${prev.bytes} bytes)`);
    }
  }
}

async function openModel(path: string): Promise<{ fh: FileHandle; size: number }> {
  let size: number;
  try {
    const st = await stat(path);
    if (st.isDirectory()) fail("ENOENT_MODEL", path, "is a directory, not a GGUF model file");
    size = st.size;
  } catch (e) {
    if (e instanceof ActiveflowError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new ActiveflowError("ENOENT_MODEL",
      `${path}: model file not found${code && code !== "ENOENT" ? ` (${code})` : ""}`, { cause: e });
  }
  if (size === 0) fail("GGUF_EMPTY", path, "file is empty (0 bytes), expected a GGUF model");
  try {
    return { fh: await open(path, "r"), size };
  } catch (e) {
    throw new ActiveflowError("ENOENT_MODEL", `${path}: cannot open model file (${(e as Error).message})`, { cause: e });
  }
}

export interface ReadGgufOptions {
  // Keys whose array values are checked and skipped, not built, and left out of `metadata`:
  // a caller that has the vocabulary already need not hold a second copy of it. Defaults to none.
  omit?: ReadonlySet<string>;
}

// Reads magic, version, metadata and tensor infos of the GGUF at `path`.
export async function readGguf(path: string, options: ReadGgufOptions = {}): Promise<GgufFile> {
  const { fh, size } = await openModel(path);
  try {
    const src = new ByteSource(fh, path, size);
    if (size < 4) {
      await src.fill(size, "magic");
      fail("GGUF_BAD_MAGIC", path, `not a GGUF file: only ${size} bytes ${describeMagic(src.peek(size))}, expected magic "GGUF"`);
    }
    await src.fill(4, "magic");
    const magic = src.peek(4);
    if (magic.toString("latin1") !== MAGIC) {
      fail("GGUF_BAD_MAGIC", path, `not a GGUF file: magic bytes are ${describeMagic(magic)}, expected 47 47 55 46 ("GGUF")`);
    }
    src.pos += 4;
    await src.fill(4, "version");
    const version = src.u32();
    if (version !== 2 && version !== 3) {
      const hint = version === 1 ? " (GGUF v1 is obsolete; re-convert the model)"
        : version >= 0x01000000 ? " (looks like a big-endian GGUF, which is not supported)" : "";
      fail("GGUF_BAD_VERSION", path, `unsupported GGUF version ${version}${hint}, expected 2 or 3`);
    }
    const tensorCount = await readCount(src, "tensor count", MIN_TENSOR_INFO_BYTES);
    const kvCount = await readCount(src, "metadata key/value count", MIN_KV_BYTES);

    const metadata = new Map<string, GgufValue>();
    const omitted = new Set<string>();
    for (let i = 0; i < kvCount; i++) {
      const key = await readString(src, `key of metadata entry #${i}`);
      await src.fill(4, `value type of ${key}`);
      const type = src.u32();
      const keep = type !== GgufValueType.ARRAY || options.omit?.has(key) !== true;
      const value = await readValue(src, type, key, 0, keep);
      if (metadata.has(key) || omitted.has(key)) fail("GGUF_BAD_VALUE", path, `metadata key ${key} appears twice`);
      if (keep) metadata.set(key, value);
      else omitted.add(key);
    }

    let alignment = DEFAULT_ALIGNMENT;
    const alignValue = metadata.get("general.alignment");
    if (alignValue !== undefined) {
      if (typeof alignValue !== "number" || !Number.isInteger(alignValue) || alignValue < 1 || (alignValue & (alignValue - 1)) !== 0) {
        fail("GGUF_BAD_VALUE", path, `general.alignment is ${String(alignValue)}, expected a power of two`);
      }
      alignment = alignValue;
    }

    const tensors: GgufTensorInfo[] = [];
    for (let i = 0; i < tensorCount; i++) tensors.push((await readTensorInfo(src, i)).info);

    const dataOffset = Math.ceil(src.pos / alignment) * alignment;
    const file: GgufFile = { path, version, metadata, tensors, alignment, dataOffset, fileSize: size };
    checkLayout(path, file);
    return file;
  } finally {
    await fh.close();
  }
}

// ---- Typed metadata accessors: each throws GGUF_BAD_VALUE naming the key and the type.

function badValue(file: GgufFile, key: string, expected: string, v: GgufValue | undefined): never {
  const found = v === undefined ? "missing"
    : Array.isArray(v) ? `an array of ${v.length}`
    : ArrayBuffer.isView(v) ? `a ${v.constructor.name}`
    : `${typeof v} ${JSON.stringify(typeof v === "bigint" ? v.toString() : v)?.slice(0, 60)}`;
  return fail("GGUF_BAD_VALUE", file.path, `metadata ${key} is ${found}, expected ${expected}`);
}

export function getOptionalString(file: GgufFile, key: string): string | undefined {
  const v = file.metadata.get(key);
  if (v === undefined) return undefined;
  return typeof v === "string" ? v : badValue(file, key, "a string", v);
}

export function getString(file: GgufFile, key: string): string {
  return getOptionalString(file, key) ?? badValue(file, key, "a string", undefined);
}

// Any numeric GGUF type; a 64-bit value beyond 2^53 is refused rather than rounded.
export function getOptionalNumber(file: GgufFile, key: string): number | undefined {
  const v = file.metadata.get(key);
  if (v === undefined) return undefined;
  return typeof v === "number" ? v : badValue(file, key, "a number (within 2^53)", v);
}

export function getNumber(file: GgufFile, key: string): number {
  return getOptionalNumber(file, key) ?? badValue(file, key, "a number", undefined);
}

export function getOptionalBool(file: GgufFile, key: string): boolean | undefined {
  const v = file.metadata.get(key);
  if (v === undefined) return undefined;
  return typeof v === "boolean" ? v : badValue(file, key, "a bool", v);
}

export function getOptionalStringArray(file: GgufFile, key: string): string[] | undefined {
  const v = file.metadata.get(key);
  if (v === undefined) return undefined;
  if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v as string[];
  return badValue(file, key, "an array of strings", v);
}

export function getStringArray(file: GgufFile, key: string): string[] {
  return getOptionalStringArray(file, key) ?? badValue(file, key, "an array of strings", undefined);
}

// Numeric arrays come back as typed arrays when large and number[] when small; the
// accessors hide the difference behind this indexable, iterable type.
export type NumberArray = readonly number[] | Float32Array | Int32Array | Uint32Array;

export function getOptionalNumberArray(file: GgufFile, key: string): NumberArray | undefined {
  const v = file.metadata.get(key);
  if (v === undefined) return undefined;
  if (v instanceof Float32Array || v instanceof Int32Array || v instanceof Uint32Array) return v;
  if (Array.isArray(v) && v.every((x) => typeof x === "number")) return v as number[];
  return badValue(file, key, "an array of numbers", v);
}

export function getNumberArray(file: GgufFile, key: string): NumberArray {
  return getOptionalNumberArray(file, key) ?? badValue(file, key, "an array of numbers", undefined);
}

// The tensor info named `name`, or undefined.
export function findTensor(file: GgufFile, name: string): GgufTensorInfo | undefined {
  return file.tensors.find((t) => t.name === name);
}
