import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { mkdtemp, open, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import {
  readGguf, getString, getNumber, getStringArray, getNumberArray,
  GgufWriter, GgufValueType, GgmlType, tensorBytes,
  u8, i8, u16, i16, u32, i32, f32, f64, u64, i64, bool, str, strArr, i32Arr, u32Arr, f32Arr, arr,
  getOptionalBool, getOptionalNumber, getOptionalString,
} from "../src/gguf/index.js";

const SMOL = join(homedir(), ".cache/activeflow/models/SmolLM2-135M-Instruct.Q4_1.gguf");

test("reads the real SmolLM2 header", async (t) => {
  if (!existsSync(SMOL)) {
    t.skip(`real model absent at ${SMOL}`);
    return;
  }
  const f = await readGguf(SMOL);
  assert.equal(f.version, 3);
  assert.equal(f.tensors.length, 272);
  assert.equal(getString(f, "general.architecture"), "llama");
  assert.equal(getString(f, "tokenizer.ggml.pre"), "smollm");
  assert.equal(getStringArray(f, "tokenizer.ggml.tokens").length, 49152);
  assert.equal(getNumberArray(f, "tokenizer.ggml.token_type").length, 49152);
  assert.equal(getNumber(f, "llama.embedding_length"), 576);
  assert.equal(getNumber(f, "llama.block_count"), 30);
  const embd = f.tensors.find((x) => x.name === "token_embd.weight");
  assert.deepEqual(embd?.dims, [576, 49152]);
  assert.equal(embd?.type, 8);
  assert.equal(embd?.bytes, (576 / 32) * 34 * 49152);
  // The last tensor ends exactly at the end of the file.
  const end = Math.max(...f.tensors.map((x) => f.dataOffset + x.offset + x.bytes));
  assert.equal(end, f.fileSize);
});

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), "af-gguf-"));
}

// Deterministic bytes so the data read back can be compared.
function pattern(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}

test("writer -> reader round trip: every value type and several tensor types", async () => {
  const dir = await tempDir();
  try {
    const path = join(dir, "rt.gguf");
    const w = new GgufWriter(path);
    const big = Array.from({ length: 100 }, (_, i) => i * 3 - 50);
    w.set("v.u8", u8(250)).set("v.i8", i8(-7)).set("v.u16", u16(65000)).set("v.i16", i16(-30000))
      .set("v.u32", u32(4000000000)).set("v.i32", i32(-2000000000)).set("v.f32", f32(0.5))
      .set("v.f64", f64(Math.PI)).set("v.u64.small", u64(1234567890123)).set("v.u64.big", u64(2n ** 63n + 5n))
      .set("v.i64", i64(-5n)).set("v.i64.big", i64(-(2n ** 60n))).set("v.bool", bool(true))
      .set("v.str", str("héllo ✓ 𝄞")).set("v.empty", str(""))
      .set("a.str", strArr(["a", "", "Ġthe", "<|im_end|>"])).set("a.i32.small", i32Arr([1, -2, 3]))
      .set("a.i32.big", i32Arr(big)).set("a.u32.big", u32Arr(big.map((x) => x + 50)))
      .set("a.f32.big", f32Arr(big.map((x) => x / 4))).set("a.f32.small", f32Arr([0.25]))
      .set("a.bool", arr(GgufValueType.BOOL, [true, false])).set("a.u64", arr(GgufValueType.UINT64, [1, 2n ** 62n]))
      .set("a.nested", arr(GgufValueType.ARRAY, [i32Arr([1, 2]), strArr(["x"])]))
      .set("a.empty", strArr([]));
    const tensors = [
      { name: "f32", dims: [3, 5], type: GgmlType.F32 },
      { name: "f16", dims: [7], type: GgmlType.F16 },
      { name: "q4_0", dims: [64, 3], type: GgmlType.Q4_0 },
      { name: "q4_1", dims: [32, 2, 2], type: GgmlType.Q4_1 },
      { name: "q8_0", dims: [96, 1], type: GgmlType.Q8_0 },
      { name: "q4_k", dims: [256, 2], type: GgmlType.Q4_K },
      { name: "q6_k", dims: [256], type: GgmlType.Q6_K },
    ];
    for (const t of tensors) w.addTensor(t);
    let lastProgress: [number, number] = [0, 0];
    const data = tensors.map((t, i) => pattern(tensorBytes(t), i + 1));
    // Mix the data forms: one buffer, a sync chunk list, an async generator.
    await w.write(async (t, i) => {
      const d = data[i]!;
      if (i % 3 === 0) return d;
      if (i % 3 === 1) return [d.subarray(0, 1), d.subarray(1)];
      return (async function* () {
        for (let o = 0; o < d.length; o += 5) yield d.subarray(o, o + 5);
      })();
    });
    const f = await readGguf(path);
    assert.equal(f.version, 3);
    const m = f.metadata;
    assert.equal(m.get("v.u8"), 250);
    assert.equal(m.get("v.i8"), -7);
    assert.equal(m.get("v.u16"), 65000);
    assert.equal(m.get("v.i16"), -30000);
    assert.equal(m.get("v.u32"), 4000000000);
    assert.equal(m.get("v.i32"), -2000000000);
    assert.equal(m.get("v.f32"), 0.5);
    assert.equal(m.get("v.f64"), Math.PI);
    assert.equal(m.get("v.u64.small"), 1234567890123);
    assert.equal(m.get("v.u64.big"), 2n ** 63n + 5n);
    assert.equal(m.get("v.i64"), -5);
    assert.equal(m.get("v.i64.big"), -(2n ** 60n));
    assert.equal(m.get("v.bool"), true);
    assert.equal(m.get("v.str"), "héllo ✓ 𝄞");
    assert.equal(m.get("v.empty"), "");
    assert.deepEqual(m.get("a.str"), ["a", "", "Ġthe", "<|im_end|>"]);
    assert.deepEqual(m.get("a.i32.small"), [1, -2, 3]);
    assert.deepEqual(m.get("a.i32.big"), Int32Array.from(big));
    assert.deepEqual(m.get("a.u32.big"), Uint32Array.from(big.map((x) => x + 50)));
    assert.deepEqual(m.get("a.f32.big"), Float32Array.from(big.map((x) => x / 4)));
    assert.deepEqual(m.get("a.f32.small"), [0.25]);
    assert.deepEqual(m.get("a.bool"), [true, false]);
    assert.deepEqual(m.get("a.u64"), [1, 2n ** 62n]);
    assert.deepEqual(m.get("a.nested"), [[1, 2], ["x"]]);
    assert.deepEqual(m.get("a.empty"), []);
    assert.equal(getOptionalBool(f, "v.bool"), true);
    assert.equal(getOptionalNumber(f, "nope"), undefined);
    assert.equal(getOptionalString(f, "v.str"), "héllo ✓ 𝄞");
    assert.deepEqual([...getNumberArray(f, "a.i32.small")], [1, -2, 3]);
    assert.equal(getNumberArray(f, "a.f32.big").length, 100);

    assert.equal(f.tensors.length, tensors.length);
    const fh = await open(path, "r");
    try {
      for (const [i, t] of tensors.entries()) {
        const info = f.tensors[i]!;
        assert.equal(info.name, t.name);
        assert.deepEqual(info.dims, t.dims);
        assert.equal(info.type, t.type);
        assert.equal(info.offset % 32, 0);
        assert.equal(info.bytes, tensorBytes(t));
        const buf = new Uint8Array(info.bytes);
        await fh.read(buf, 0, info.bytes, f.dataOffset + info.offset);
        assert.deepEqual(buf, data[i], `data of ${t.name}`);
      }
    } finally {
      await fh.close();
    }
    assert.equal(f.dataOffset % 32, 0);
    const last = f.tensors[f.tensors.length - 1]!;
    assert.equal(f.fileSize, f.dataOffset + last.offset + last.bytes);
    assert.deepEqual(await readdir(dir), ["rt.gguf"]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("reader: omitted array keys are skipped (past the 1 MiB read window) and the rest reads as without omit", async () => {
  const dir = await tempDir();
  try {
    const path = join(dir, "omit.gguf");
    const w = new GgufWriter(path);
    // ~2.6 MB of strings: the skip crosses several read windows.
    const words = Array.from({ length: 200_000 }, (_, i) => `tok${i}`);
    w.set("before", u32(7)).set("big.strings", strArr(words)).set("big.f32", f32Arr(words.map((_, i) => i)))
      .set("small.u8", arr(GgufValueType.UINT8, [1, 2, 3])).set("nested", arr(GgufValueType.ARRAY, [strArr(["a"]), i32Arr([1])]))
      .set("kept.strings", strArr(["x", "y"])).set("after", str("end"));
    w.addTensor({ name: "t", dims: [32], type: GgmlType.F32 });
    await w.write(() => pattern(128, 1));
    const all = await readGguf(path);
    const some = await readGguf(path, { omit: new Set(["big.strings", "big.f32", "small.u8", "nested", "before"]) });
    // Only arrays are omitted: a scalar named in omit stays.
    assert.deepEqual([...some.metadata.keys()], ["before", "kept.strings", "after"]);
    for (const k of some.metadata.keys()) assert.deepEqual(some.metadata.get(k), all.metadata.get(k), k);
    assert.deepEqual(some.tensors, all.tensors);
    assert.equal(some.dataOffset, all.dataOffset);
    // A file cut inside an omitted array is still refused as truncated.
    const cut = join(dir, "cut.gguf");
    const fh = await open(path, "r");
    const head = Buffer.alloc(2_000_000); // the count fits; the strings run out while being skipped
    await fh.read(head, 0, head.length, 0);
    await fh.close();
    const out = await open(cut, "w");
    await out.write(head);
    await out.close();
    await assert.rejects(readGguf(cut, { omit: new Set(["big.strings"]) }), { code: "GGUF_TRUNCATED", message: /big\.strings\[\d+\]/ });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("writer: custom alignment is recorded and honoured; progress reaches the total", async () => {
  const dir = await tempDir();
  try {
    const path = join(dir, "a.gguf");
    const seen: number[] = [];
    const w = new GgufWriter(path, { alignment: 64, onProgress: (done, total) => seen.push(done / total) });
    w.set("general.architecture", str("llama"));
    w.addTensor({ name: "a", dims: [5], type: GgmlType.F32 }).addTensor({ name: "b", dims: [3], type: GgmlType.F16 });
    await w.write((t) => new Uint8Array(tensorBytes(t)).fill(1));
    const f = await readGguf(path);
    assert.equal(f.alignment, 64);
    assert.equal(f.metadata.get("general.alignment"), 64);
    assert.equal(f.dataOffset % 64, 0);
    assert.deepEqual(f.tensors.map((t) => t.offset), [0, 64]);
    assert.equal(seen[seen.length - 1], 1);
    assert.equal((await stat(path)).size, w.totalBytes);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("writer: a throwing data source leaves nothing at the target and no temp file", async () => {
  const dir = await tempDir();
  try {
    const path = join(dir, "fail.gguf");
    const w = new GgufWriter(path);
    w.addTensor({ name: "a", dims: [32], type: GgmlType.F32 }).addTensor({ name: "b", dims: [32], type: GgmlType.F32 });
    await assert.rejects(
      w.write(function* (t) {
        if (t.name === "b") throw new Error("source failed");
        yield new Uint8Array(128);
      }),
      /source failed/,
    );
    assert.deepEqual(await readdir(dir), []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("writer: wrong data size and abort signal both fail cleanly", async () => {
  const dir = await tempDir();
  try {
    const path = join(dir, "bad.gguf");
    const w = new GgufWriter(path);
    w.addTensor({ name: "a", dims: [32], type: GgmlType.F32 });
    await assert.rejects(w.write(() => new Uint8Array(100)), /tensor a: data source gave 100 bytes, expected 128/);
    const ac = new AbortController();
    const w2 = new GgufWriter(path, { signal: ac.signal });
    w2.addTensor({ name: "a", dims: [32], type: GgmlType.F32 });
    ac.abort();
    await assert.rejects(w2.write(() => new Uint8Array(128)), (e: Error & { code?: string }) => e.code === "ABORTED");
    assert.deepEqual(await readdir(dir), []);
    assert.throws(() => new GgufWriter(path).addTensor({ name: "q", dims: [30], type: GgmlType.Q4_0 }), /not a multiple of the Q4_0 block size 32/);
    const w3 = new GgufWriter(path);
    w3.set("x.count", u32(-1));
    await assert.rejects(w3.write(() => new Uint8Array(0)), /metadata x\.count: .*out of range/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
