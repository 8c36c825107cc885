// Streaming GGUF v3 writer. The header is built in memory (a few MB at most); tensor data
// is written tensor by tensor from chunks, so a multi-GB model never sits in memory.
// Writes go to `<target>.tmp-<pid>` and are renamed into place only when complete; on any
// error or abort the temp file is removed and nothing appears at the target.
import { open, rename, rm, type FileHandle } from "node:fs/promises";
import { ActiveflowError } from "../errors.js";
import { trackTemp } from "../tempFiles.js";
import { GgufValueType, SUPPORTED_TYPES, TYPE_LAYOUT, typeName } from "./types.js";
import { DEFAULT_ALIGNMENT } from "./reader.js";

// A metadata value with its GGUF type spelled out (JS numbers do not say u32 vs f32).
export type GgufWriteValue =
  | { type: Exclude<GgufValueType, GgufValueType.ARRAY | GgufValueType.STRING | GgufValueType.BOOL | GgufValueType.UINT64 | GgufValueType.INT64>; value: number }
  | { type: GgufValueType.UINT64 | GgufValueType.INT64; value: number | bigint }
  | { type: GgufValueType.BOOL; value: boolean }
  | { type: GgufValueType.STRING; value: string }
  | { type: GgufValueType.ARRAY; elemType: GgufValueType; value: readonly GgufWriteValue[] | ArrayLike<number> | readonly string[] | readonly (number | bigint)[] | readonly boolean[] };

export const u8 = (value: number): GgufWriteValue => ({ type: GgufValueType.UINT8, value });
export const i8 = (value: number): GgufWriteValue => ({ type: GgufValueType.INT8, value });
export const u16 = (value: number): GgufWriteValue => ({ type: GgufValueType.UINT16, value });
export const i16 = (value: number): GgufWriteValue => ({ type: GgufValueType.INT16, value });
export const u32 = (value: number): GgufWriteValue => ({ type: GgufValueType.UINT32, value });
export const i32 = (value: number): GgufWriteValue => ({ type: GgufValueType.INT32, value });
export const f32 = (value: number): GgufWriteValue => ({ type: GgufValueType.FLOAT32, value });
export const f64 = (value: number): GgufWriteValue => ({ type: GgufValueType.FLOAT64, value });
export const u64 = (value: number | bigint): GgufWriteValue => ({ type: GgufValueType.UINT64, value });
export const i64 = (value: number | bigint): GgufWriteValue => ({ type: GgufValueType.INT64, value });
export const bool = (value: boolean): GgufWriteValue => ({ type: GgufValueType.BOOL, value });
export const str = (value: string): GgufWriteValue => ({ type: GgufValueType.STRING, value });
export const strArr = (value: readonly string[]): GgufWriteValue => ({ type: GgufValueType.ARRAY, elemType: GgufValueType.STRING, value });
export const i32Arr = (value: ArrayLike<number>): GgufWriteValue => ({ type: GgufValueType.ARRAY, elemType: GgufValueType.INT32, value });
export const u32Arr = (value: ArrayLike<number>): GgufWriteValue => ({ type: GgufValueType.ARRAY, elemType: GgufValueType.UINT32, value });
export const f32Arr = (value: ArrayLike<number>): GgufWriteValue => ({ type: GgufValueType.ARRAY, elemType: GgufValueType.FLOAT32, value });
// An array of any element type; for nested arrays pass GgufWriteValue elements.
export const arr = (elemType: GgufValueType, value: Extract<GgufWriteValue, { type: GgufValueType.ARRAY }>["value"]): GgufWriteValue =>
  ({ type: GgufValueType.ARRAY, elemType, value });

export interface GgufWriterTensor {
  name: string;
  // GGML order: dims[0] is the row length.
  dims: readonly number[];
  type: number;
}

// Tensor bytes as one buffer, or chunks produced on demand (sync or async). A chunk is
// consumed before the next is requested, so a generator may refill one buffer.
export type TensorData = Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

export interface GgufWriterOptions {
  // Data alignment; written as general.alignment when not 32. Defaults to 32.
  alignment?: number;
  // Called as bytes reach the file, with the total file size known up front.
  onProgress?: (bytesWritten: number, totalBytes: number) => void;
  // Aborts the write (temp file removed, ABORTED thrown).
  signal?: AbortSignal;
}

// Byte size of a tensor of `type` with `dims`; throws BAD_ARGUMENT for a bad shape.
export function tensorBytes(t: GgufWriterTensor): number {
  const layout = TYPE_LAYOUT[t.type];
  if (!layout || !SUPPORTED_TYPES.has(t.type)) {
    throw new ActiveflowError("BAD_ARGUMENT", `tensor ${t.name}: unsupported type ${typeName(t.type)}`);
  }
  const n = t.dims.reduce((a, b) => a * b, 1);
  if (t.dims.length === 0 || t.dims.some((d) => !Number.isSafeInteger(d) || d <= 0) || !Number.isSafeInteger(n)) {
    throw new ActiveflowError("BAD_ARGUMENT", `tensor ${t.name}: bad dims [${t.dims.join(", ")}]`);
  }
  if (t.dims[0]! % layout[0] !== 0) {
    throw new ActiveflowError("BAD_ARGUMENT",
      `tensor ${t.name}: row length ${t.dims[0]} is not a multiple of the ${typeName(t.type)} block size ${layout[0]}`);
  }
  return (n / layout[0]) * layout[1];
}

const align = (n: number, a: number): number => Math.ceil(n / a) * a;

// Grows a byte list for the header.
class HeaderBuilder {
  private parts: Buffer[] = [];
  size = 0;
  private push(b: Buffer): void {
    this.parts.push(b);
    this.size += b.length;
  }
  u32(v: number): void {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32LE(v);
    this.push(b);
  }
  u64(v: number | bigint): void {
    const b = Buffer.allocUnsafe(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  string(s: string): void {
    const bytes = Buffer.from(s, "utf8");
    this.u64(bytes.length);
    this.push(bytes);
  }
  scalar(type: GgufValueType, v: number | bigint | boolean): void {
    this.push(encodeGgufScalar(type, v));
  }
  value(key: string, v: GgufWriteValue, withType: boolean): void {
    if (withType) this.u32(v.type);
    if (v.type === GgufValueType.STRING) {
      this.string(v.value);
    } else if (v.type === GgufValueType.ARRAY) {
      this.u32(v.elemType);
      const items = v.value as ArrayLike<unknown>;
      this.u64(items.length);
      for (let i = 0; i < items.length; i++) {
        const item = items[i];
        if (v.elemType === GgufValueType.STRING) {
          if (typeof item !== "string") throw new ActiveflowError("BAD_ARGUMENT", `metadata ${key}[${i}] is not a string`);
          this.string(item);
        } else if (v.elemType === GgufValueType.ARRAY) {
          this.value(`${key}[${i}]`, item as GgufWriteValue, false);
        } else {
          this.scalar(v.elemType, item as number | bigint | boolean);
        }
      }
    } else {
      this.scalar(v.type, v.value);
    }
  }
  pad(to: number): void {
    if (to > this.size) this.push(Buffer.alloc(to - this.size));
  }
  concat(): Buffer {
    return Buffer.concat(this.parts, this.size);
  }
}

// Small chunks are gathered into one buffer so the file sees few large writes.
const FLUSH_BYTES = 4 << 20;

// Bytes of one scalar metadata value (little-endian), as GGUF stores it.
export function encodeGgufScalar(type: GgufValueType, v: number | bigint | boolean): Buffer {
  const b = Buffer.allocUnsafe(type === GgufValueType.UINT64 || type === GgufValueType.INT64 || type === GgufValueType.FLOAT64 ? 8
    : type === GgufValueType.UINT32 || type === GgufValueType.INT32 || type === GgufValueType.FLOAT32 ? 4
    : type === GgufValueType.UINT16 || type === GgufValueType.INT16 ? 2 : 1);
  switch (type) {
    case GgufValueType.UINT8: b.writeUInt8(Number(v)); break;
    case GgufValueType.INT8: b.writeInt8(Number(v)); break;
    case GgufValueType.UINT16: b.writeUInt16LE(Number(v)); break;
    case GgufValueType.INT16: b.writeInt16LE(Number(v)); break;
    case GgufValueType.UINT32: b.writeUInt32LE(Number(v)); break;
    case GgufValueType.INT32: b.writeInt32LE(Number(v)); break;
    case GgufValueType.FLOAT32: b.writeFloatLE(Number(v)); break;
    case GgufValueType.FLOAT64: b.writeDoubleLE(Number(v)); break;
    case GgufValueType.BOOL: b.writeUInt8(v ? 1 : 0); break;
    case GgufValueType.UINT64: b.writeBigUInt64LE(BigInt(v)); break;
    case GgufValueType.INT64: b.writeBigInt64LE(BigInt(v)); break;
    default: throw new ActiveflowError("BAD_ARGUMENT", `GGUF value type ${type} is not a scalar`);
  }
  return b;
}

export class GgufWriter {
  private readonly metadata = new Map<string, GgufWriteValue>();
  private readonly tensors: (GgufWriterTensor & { bytes: number; offset: number })[] = [];
  private readonly alignment: number;
  private readonly tmpPath: string;
  // Removes tmpPath from the exit-time cleanup once it is renamed or removed.
  private untrack: () => void = () => {};
  private fh: FileHandle | undefined;
  private state: "setup" | "writing" | "done" | "failed" = "setup";
  private next = 0; // index of the next tensor whose data is expected
  private written = 0;
  private total = 0;
  private pending: Buffer = Buffer.allocUnsafe(0);
  private pendingLen = 0;

  constructor(readonly target: string, private readonly options: GgufWriterOptions = {}) {
    this.alignment = options.alignment ?? DEFAULT_ALIGNMENT;
    if (!Number.isInteger(this.alignment) || this.alignment < 1 || (this.alignment & (this.alignment - 1)) !== 0) {
      throw new ActiveflowError("BAD_ARGUMENT", `GGUF alignment ${this.alignment} is not a power of two`);
    }
    this.tmpPath = `${target}.tmp-${process.pid}`;
  }

  // Adds (or replaces) a metadata entry; entries are written in insertion order.
  set(key: string, value: GgufWriteValue): this {
    this.assertSetup();
    this.metadata.set(key, value);
    return this;
  }

  // Declares a tensor; data must later be written in declaration order.
  addTensor(t: GgufWriterTensor): this {
    this.assertSetup();
    if (this.tensors.some((x) => x.name === t.name)) {
      throw new ActiveflowError("BAD_ARGUMENT", `tensor ${t.name} added twice`);
    }
    const bytes = tensorBytes(t);
    const last = this.tensors[this.tensors.length - 1];
    const offset = last ? align(last.offset + last.bytes, this.alignment) : 0;
    this.tensors.push({ name: t.name, dims: [...t.dims], type: t.type, bytes, offset });
    return this;
  }

  // Writes the whole file: header, then each tensor's data from `source`, then renames.
  // Any error (including from `source`) removes the temp file and is rethrown.
  async write(source: (t: GgufWriterTensor, index: number) => TensorData | Promise<TensorData>): Promise<void> {
    try {
      await this.begin();
      for (let i = 0; i < this.tensors.length; i++) {
        const t = this.tensors[i]!;
        await this.writeTensor(t.name, await source(t, i));
      }
      await this.finish();
    } catch (e) {
      await this.abort();
      throw e;
    }
  }

  // Opens the temp file and writes the header. Lower-level than write().
  async begin(): Promise<void> {
    this.assertSetup();
    this.state = "writing";
    const h = new HeaderBuilder();
    if (this.alignment !== DEFAULT_ALIGNMENT && !this.metadata.has("general.alignment")) {
      this.metadata.set("general.alignment", u32(this.alignment));
    }
    h.u32(0x46554747); // "GGUF" little-endian
    h.u32(3);
    h.u64(this.tensors.length);
    h.u64(this.metadata.size);
    for (const [k, v] of this.metadata) {
      h.string(k);
      try {
        h.value(k, v, true);
      } catch (e) {
        if (e instanceof ActiveflowError) throw e;
        // Node's range errors do not say which key held the value.
        throw new ActiveflowError("BAD_ARGUMENT", `metadata ${k}: ${(e as Error).message}`, { cause: e });
      }
    }
    for (const t of this.tensors) {
      h.string(t.name);
      h.u32(t.dims.length);
      for (const d of t.dims) h.u64(d);
      h.u32(t.type);
      h.u64(t.offset);
    }
    h.pad(align(h.size, this.alignment));
    const last = this.tensors[this.tensors.length - 1];
    this.total = h.size + (last ? last.offset + last.bytes : 0);
    this.untrack = trackTemp(this.tmpPath);
    this.fh = await open(this.tmpPath, "w");
    await this.put(h.concat());
  }

  // Writes the data of tensor `name`, which must be the next declared one, then pads.
  async writeTensor(name: string, data: TensorData): Promise<void> {
    if (this.state !== "writing") throw new ActiveflowError("BAD_ARGUMENT", `GGUF writer for ${this.target} is not writing (state ${this.state})`);
    const t = this.tensors[this.next];
    if (!t || t.name !== name) {
      throw new ActiveflowError("BAD_ARGUMENT", `tensor ${name} written out of order; expected ${t?.name ?? "no more tensors"}`);
    }
    let got = 0;
    const take = async (chunk: Uint8Array): Promise<void> => {
      got += chunk.length;
      if (got > t.bytes) {
        throw new ActiveflowError("BAD_ARGUMENT", `tensor ${name}: data source gave more than its ${t.bytes} bytes`);
      }
      await this.put(chunk);
    };
    if (data instanceof Uint8Array) await take(data);
    else if (Symbol.asyncIterator in data) for await (const c of data) await take(c);
    else for (const c of data) await take(c);
    if (got !== t.bytes) {
      throw new ActiveflowError("BAD_ARGUMENT", `tensor ${name}: data source gave ${got} bytes, expected ${t.bytes}`);
    }
    this.next++;
    const nextT = this.tensors[this.next];
    if (nextT) await this.put(new Uint8Array(nextT.offset - (t.offset + t.bytes)));
  }

  // Flushes, closes and renames the temp file onto the target.
  async finish(): Promise<void> {
    if (this.next !== this.tensors.length) {
      throw new ActiveflowError("BAD_ARGUMENT", `GGUF writer for ${this.target}: ${this.tensors.length - this.next} tensors have no data yet`);
    }
    await this.flush();
    await this.fh!.close();
    this.fh = undefined;
    await rename(this.tmpPath, this.target);
    this.untrack();
    this.state = "done";
  }

  // Closes and removes the temp file; safe to call more than once.
  async abort(): Promise<void> {
    if (this.state === "done") return;
    this.state = "failed";
    const fh = this.fh;
    this.fh = undefined;
    if (fh) await fh.close().catch(() => undefined);
    await rm(this.tmpPath, { force: true });
    this.untrack();
  }

  // Total bytes of the file; known after begin().
  get totalBytes(): number {
    return this.total;
  }

  private assertSetup(): void {
    if (this.state !== "setup") throw new ActiveflowError("BAD_ARGUMENT", `GGUF writer for ${this.target} already started`);
  }

  private async put(chunk: Uint8Array): Promise<void> {
    if (this.options.signal?.aborted) {
      throw new ActiveflowError("ABORTED", `writing ${this.target} was aborted`, { cause: this.options.signal.reason });
    }
    if (chunk.length >= FLUSH_BYTES) {
      await this.flush();
      await this.raw(chunk);
      return;
    }
    if (this.pendingLen + chunk.length > FLUSH_BYTES) await this.flush();
    if (this.pending.length === 0) this.pending = Buffer.allocUnsafe(FLUSH_BYTES);
    this.pending.set(chunk, this.pendingLen);
    this.pendingLen += chunk.length;
  }

  private async flush(): Promise<void> {
    if (this.pendingLen === 0) return;
    // The pending buffer is reused, so its bytes must reach the file before the next put.
    await this.raw(this.pending.subarray(0, this.pendingLen));
    this.pendingLen = 0;
  }

  private async raw(chunk: Uint8Array): Promise<void> {
    let off = 0;
    while (off < chunk.length) {
      const { bytesWritten } = await this.fh!.write(chunk, off, chunk.length - off);
      off += bytesWritten;
    }
    this.written += chunk.length;
    this.options.onProgress?.(this.written, this.total);
  }
}
