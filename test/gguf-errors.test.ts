// Every bad-input path of the GGUF reader: files built by our writer, then damaged by
// byte surgery, must fail with the right code and a message naming the problem.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  GgufWriter, GgmlType, readGguf, getString, getNumber, getStringArray, getNumberArray, getOptionalNumber,
  str, u32, strArr, tensorBytes,
} from "../src/gguf/index.js";
import { ActiveflowError } from "../src/errors.js";

const dir = await mkdtemp(join(tmpdir(), "af-gguf-err-"));
test.after(() => rm(dir, { recursive: true, force: true }));

let counter = 0;
// A good file with one string kv, one string-array kv and two tensors.
async function goodFile(): Promise<Buffer> {
  const path = join(dir, `good-${counter++}.gguf`);
  const w = new GgufWriter(path);
  w.set("general.architecture", str("llama")).set("llama.block_count", u32(2)).set("tokenizer.ggml.tokens", strArr(["a", "b"]));
  w.addTensor({ name: "tensA", dims: [64, 2], type: GgmlType.Q4_0 });
  w.addTensor({ name: "tensB", dims: [32], type: GgmlType.F32 });
  await w.write((t) => new Uint8Array(tensorBytes(t)));
  return readFile(path);
}

// File offsets of a tensor's fields, found by its name.
function tensorFields(buf: Buffer, name: string): { nDims: number; dims: number; type: number; offset: number } {
  const at = buf.indexOf(Buffer.from(name));
  assert.ok(at > 0);
  const nDims = at + name.length;
  const n = buf.readUInt32LE(nDims);
  const dims = nDims + 4;
  return { nDims, dims, type: dims + 8 * n, offset: dims + 8 * n + 4 };
}

async function expectError(buf: Buffer | null, code: string, ...patterns: RegExp[]): Promise<string> {
  const path = join(dir, `bad-${counter++}.gguf`);
  if (buf) await writeFile(path, buf);
  try {
    await readGguf(path);
  } catch (e) {
    assert.ok(e instanceof ActiveflowError, `expected ActiveflowError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.ok(e.message.includes(path), `message names the file: ${e.message}`);
    assert.ok(!e.message.includes("\n"), "one-line message");
    for (const p of patterns) assert.match(e.message, p);
    return e.message;
  }
  assert.fail(`expected ${code}`);
}

test("the good file reads", async () => {
  const path = join(dir, "check.gguf");
  await writeFile(path, await goodFile());
  const f = await readGguf(path);
  assert.equal(f.tensors.length, 2);
});

test("missing file, directory and empty file", async () => {
  await expectError(null, "ENOENT_MODEL", /not found/);
  const sub = join(dir, "adir");
  await mkdir(sub);
  await assert.rejects(readGguf(sub), (e: ActiveflowError) => e.code === "ENOENT_MODEL" && /is a directory/.test(e.message));
  await expectError(Buffer.alloc(0), "GGUF_EMPTY", /empty/);
});

test("wrong magic shows the bytes found", async () => {
  const b = await goodFile();
  b.write("PK\x03\x04", 0, "latin1");
  await expectError(b, "GGUF_BAD_MAGIC", /50 4b 03 04/, /"PK\.\."/, /expected .*GGUF/);
  await expectError(Buffer.from("GG"), "GGUF_BAD_MAGIC", /only 2 bytes/);
});

test("unsupported versions", async () => {
  const b = await goodFile();
  b.writeUInt32LE(1, 4);
  await expectError(b, "GGUF_BAD_VERSION", /version 1/, /obsolete/);
  b.writeUInt32LE(0x03000000, 4);
  await expectError(b, "GGUF_BAD_VERSION", /big-endian/);
  b.writeUInt32LE(2, 4);
  const path = join(dir, "v2.gguf");
  await writeFile(path, b);
  assert.equal((await readGguf(path)).version, 2);
});

test("truncated header names the field and offset", async () => {
  const b = await goodFile();
  await expectError(b.subarray(0, 6), "GGUF_TRUNCATED", /version needs 4 bytes at offset 4/);
  await expectError(b.subarray(0, 12), "GGUF_TRUNCATED", /tensor count needs 8 bytes at offset 8/);
  const key = b.indexOf(Buffer.from("llama.block_count"));
  await expectError(b.subarray(0, key + 17 + 2), "GGUF_TRUNCATED", /value type of llama\.block_count/);
  const t = tensorFields(b, "tensB");
  await expectError(b.subarray(0, t.dims + 3), "GGUF_TRUNCATED", /tensor tensB/, new RegExp(`offset ${t.nDims + 4}`));
});

test("absurd counts and lengths fail fast without allocating", async () => {
  const b = await goodFile();
  const c1 = Buffer.from(b);
  c1.writeBigUInt64LE(1n << 40n, 8);
  await expectError(c1, "GGUF_BAD_COUNT", /tensor count is 1099511627776 at offset 8/, /bytes remain/);
  const c2 = Buffer.from(b);
  c2.writeBigUInt64LE(0xffffffffffffffffn, 16);
  await expectError(c2, "GGUF_BAD_COUNT", /metadata key\/value count is 18446744073709551615/);
  // The length of the first key.
  const c3 = Buffer.from(b);
  c3.writeBigUInt64LE(1n << 50n, 24);
  await expectError(c3, "GGUF_BAD_COUNT", /length of key of metadata entry #0 is 1125899906842624/);
  // The length of the "llama" string value.
  const c4 = Buffer.from(b);
  const llama = c4.indexOf(Buffer.from("llama"), 40);
  c4.writeBigUInt64LE(BigInt(c4.length), llama - 8);
  await expectError(c4, "GGUF_BAD_COUNT", /string value of general\.architecture/);
  // The element count of the token array, and one element's length.
  const c5 = Buffer.from(b);
  const tokKey = c5.indexOf(Buffer.from("tokenizer.ggml.tokens"));
  const countAt = tokKey + 21 + 4 + 4;
  c5.writeBigUInt64LE(1n << 33n, countAt);
  await expectError(c5, "GGUF_BAD_COUNT", /element count of array tokenizer\.ggml\.tokens is 8589934592/);
  const c6 = Buffer.from(b);
  c6.writeBigUInt64LE(1n << 62n, countAt + 8);
  await expectError(c6, "GGUF_BAD_COUNT", /length of tokenizer\.ggml\.tokens\[0\]/);
});

test("tensor data past the end of the file", async () => {
  const b = await goodFile();
  await expectError(b.subarray(0, b.length - 10), "GGUF_BAD_TENSOR", /tensor tensB/, /data offset 96/, new RegExp(`${b.length - 10}-byte file`), /past the end/);
});

test("unknown tensor type names tensor and type id", async () => {
  const b = await goodFile();
  const t = tensorFields(b, "tensA");
  b.writeUInt32LE(6, t.type);
  await expectError(b, "GGUF_UNKNOWN_TYPE", /tensor tensA has type id 6 \(Q5_0\)/);
  b.writeUInt32LE(200, t.type);
  await expectError(b, "GGUF_UNKNOWN_TYPE", /type id 200/);
});

test("misaligned and overlapping tensor offsets", async () => {
  const b = await goodFile();
  const t = tensorFields(b, "tensB");
  const mis = Buffer.from(b);
  mis.writeBigUInt64LE(40n, t.offset);
  await expectError(mis, "GGUF_BAD_TENSOR", /tensor tensB data offset 40 is not a multiple of the alignment 32/);
  const over = Buffer.from(b);
  over.writeBigUInt64LE(32n, t.offset);
  await expectError(over, "GGUF_BAD_TENSOR", /tensB at data offset 32 overlaps tensor tensA/);
  const huge = Buffer.from(b);
  huge.writeBigUInt64LE(1n << 60n, t.offset);
  await expectError(huge, "GGUF_BAD_TENSOR", /tensor tensB data offset/);
});

test("bad dims: zero, negative, overflow, too many, not a block multiple", async () => {
  const b = await goodFile();
  const t = tensorFields(b, "tensA");
  const zero = Buffer.from(b);
  zero.writeBigUInt64LE(0n, t.dims + 8);
  await expectError(zero, "GGUF_BAD_TENSOR", /tensor tensA dim 1 is 0/);
  const neg = Buffer.from(b);
  neg.writeBigInt64LE(-1n, t.dims + 8);
  await expectError(neg, "GGUF_BAD_TENSOR", /tensor tensA dim 1 is -1/);
  const ovf = Buffer.from(b);
  ovf.writeBigUInt64LE(1n << 30n, t.dims);
  ovf.writeBigUInt64LE(1n << 30n, t.dims + 8);
  await expectError(ovf, "GGUF_BAD_TENSOR", /overflow/);
  const many = Buffer.from(b);
  many.writeUInt32LE(9, t.nDims);
  await expectError(many, "GGUF_BAD_TENSOR", /tensA has 9 dims/);
  const block = Buffer.from(b);
  block.writeBigUInt64LE(48n, t.dims);
  await expectError(block, "GGUF_BAD_TENSOR", /row length 48 is not a multiple of the Q4_0 block size 32/);
});

test("bad metadata: unknown value type, duplicate key, bad alignment", async () => {
  const b = await goodFile();
  const key = b.indexOf(Buffer.from("llama.block_count"));
  const vt = Buffer.from(b);
  vt.writeUInt32LE(77, key + 17);
  await expectError(vt, "GGUF_BAD_VALUE", /llama\.block_count has unknown value type 77/);
  const path = join(dir, "align.gguf");
  const w = new GgufWriter(path);
  w.set("general.alignment", u32(24));
  await w.write(() => new Uint8Array(0));
  await assert.rejects(readGguf(path), (e: ActiveflowError) =>
    e.code === "GGUF_BAD_VALUE" && /general\.alignment is 24, expected a power of two/.test(e.message));
  const d = join(dir, "dup.gguf");
  const w2 = new GgufWriter(d);
  w2.set("a.x", u32(1)).set("a.y", u32(2));
  await w2.write(() => new Uint8Array(0));
  const db = await readFile(d);
  db.write("a.x", db.indexOf(Buffer.from("a.y")), "latin1");
  await expectError(db, "GGUF_BAD_VALUE", /metadata key a\.x appears twice/);
});

test("typed accessors name the key and the expected type", async () => {
  const path = join(dir, "acc.gguf");
  await writeFile(path, await goodFile());
  const f = await readGguf(path);
  const code = (re: RegExp) => (e: unknown) => e instanceof ActiveflowError && e.code === "GGUF_BAD_VALUE" && re.test(e.message);
  assert.throws(() => getString(f, "llama.block_count"), code(/metadata llama\.block_count is number 2, expected a string/));
  assert.throws(() => getString(f, "general.name"), code(/metadata general\.name is missing, expected a string/));
  assert.throws(() => getNumber(f, "general.architecture"), code(/general\.architecture is string "llama", expected a number/));
  assert.throws(() => getOptionalNumber(f, "tokenizer.ggml.tokens"), code(/tokenizer\.ggml\.tokens is an array of 2, expected a number/));
  assert.throws(() => getNumberArray(f, "tokenizer.ggml.tokens"), code(/expected an array of numbers/));
  assert.throws(() => getStringArray(f, "llama.block_count"), code(/expected an array of strings/));
  assert.deepEqual(getStringArray(f, "tokenizer.ggml.tokens"), ["a", "b"]);
});
