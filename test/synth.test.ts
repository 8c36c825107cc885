import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, open, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GgmlType, readGguf, getNumber, getString, getStringArray, getNumberArray, type GgufFile } from "../src/gguf/index.js";
import { dequantize, fp16ToFp32, fp32ToFp16, quantize } from "../src/synth/quantize.js";
import { SHAPES, dataBytes, llamaTensors, paramCount } from "../src/synth/shapes.js";
import { synthesizeModel } from "../src/synth/synth.js";
import { buildTinyModel, CHATML_TEMPLATE, TINY_VOCAB_SIZE } from "../src/synth/tinyModel.js";
import { byteToUnicode } from "../src/synth/vocab.js";

const dir = await mkdtemp(join(tmpdir(), "af-synth-"));
test.after(() => rm(dir, { recursive: true, force: true }));

async function tensorData(f: GgufFile, name: string): Promise<Uint8Array> {
  const t = f.tensors.find((x) => x.name === name);
  assert.ok(t, `tensor ${name}`);
  const fh = await open(f.path, "r");
  try {
    const buf = new Uint8Array(t.bytes);
    await fh.read(buf, 0, t.bytes, f.dataOffset + t.offset);
    return buf;
  } finally {
    await fh.close();
  }
}

test("fp16 conversion rounds to nearest even", () => {
  assert.equal(fp32ToFp16(1), 0x3c00);
  assert.equal(fp32ToFp16(-2), 0xc000);
  assert.equal(fp32ToFp16(0.1), 0x2e66);
  assert.equal(fp32ToFp16(65504), 0x7bff);
  assert.equal(fp32ToFp16(65520), 0x7c00); // rounds up to inf
  assert.equal(fp32ToFp16(2 ** -24), 0x0001); // smallest subnormal
  assert.equal(fp32ToFp16(2 ** -25), 0x0000); // tie to even -> 0
  assert.equal(fp32ToFp16(3 * 2 ** -25), 0x0002); // tie to even -> 2
  assert.equal(fp32ToFp16(1 + 2 ** -11), 0x3c00); // tie to even, down
  assert.equal(fp32ToFp16(1 + 3 * 2 ** -11), 0x3c02); // tie to even, up
  assert.ok(Number.isNaN(fp16ToFp32(fp32ToFp16(NaN))));
  for (const h of [0x0001, 0x03ff, 0x0400, 0x3c00, 0x7bff, 0xbc01]) assert.equal(fp32ToFp16(fp16ToFp32(h)), h);
});

// Input the golden hashes were made from; the hashes were checked once against
// gguf-py's numpy reference quantisers (gguf.quants.quantize), bit for bit.
function goldenInput(): Float32Array {
  const x = new Float32Array(32 * 64);
  let s = 123456789;
  for (let i = 0; i < x.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    x[i] = ((s >>> 0) / 2 ** 32 - 0.5) * (1 + (i >> 5)) * 0.37;
  }
  for (let i = 0; i < 32; i++) x[64 + i] = 0;
  for (let i = 0; i < 32; i++) x[96 + i] = (i - 16) / 4;
  x[128] = -100;
  return x;
}

test("reference quantisers match ggml's bytes and dequantise within half a step", () => {
  const x = goldenInput();
  const golden: Record<number, string> = {
    [GgmlType.F16]: "b7dcc8bd2c76f5021cfb443bf8e6a97e417217246aab650f1ab7f57597679cc0",
    [GgmlType.Q4_0]: "68060397e2e566dc014a53e5176efb1c833a6b35de7fe8547007880a9a56e0c4",
    [GgmlType.Q4_1]: "ffa263b50168f0db1ac257d4701285e692f31e407db054287a4d309f6c674ed8",
    [GgmlType.Q8_0]: "064d807df57d85788e8dcd08285590c9b383be583c4c29642c5c765371078476",
  };
  for (const [type, hash] of Object.entries(golden)) {
    const q = quantize(Number(type), x);
    assert.equal(createHash("sha256").update(q).digest("hex"), hash, `type ${type}`);
    const back = dequantize(Number(type), q, x.length);
    // Per block: error at most half a quantisation step (steps: amax/8, range/15, amax/127)
    // plus the FP16 rounding of the scales; Q4_0 has no code +8, so the side opposite the
    // max can clip by a whole step.
    for (let b = 0; b < x.length / 32; b++) {
      const xs = x.subarray(b * 32, b * 32 + 32);
      const amax = Math.max(...xs.map(Math.abs));
      const range = Math.max(...xs) - Math.min(...xs);
      const step = Number(type) === GgmlType.Q4_0 ? amax / 8 : Number(type) === GgmlType.Q4_1 ? range / 15
        : Number(type) === GgmlType.Q8_0 ? amax / 127 : amax / 1024;
      for (let j = 0; j < 32; j++) {
        const bound = Number(type) === GgmlType.Q4_0 ? step * 1.01 : step * 0.51;
        assert.ok(Math.abs(back[b * 32 + j]! - xs[j]!) <= bound + amax / 1000 + 1e-7, `type ${type} block ${b} elem ${j}`);
      }
    }
  }
  const f32 = quantize(GgmlType.F32, x);
  assert.deepEqual(dequantize(GgmlType.F32, f32, x.length), x);
  assert.throws(() => quantize(GgmlType.Q4_K, x), /Q4_K is not implemented/);
});

test("K-quant and BF16 dequantisers match ggml on random blocks", () => {
  // Hashes checked once against gguf-py's numpy dequantisers (gguf.quants.dequantize).
  const golden: [number, number, string][] = [
    [GgmlType.Q4_K, 144, "79dd2b8a03912f75f6b3a7403d2c9c7eaaff8f46175864acb97bf9d6996a8c4a"],
    [GgmlType.Q5_K, 176, "cd8827252fbb19511378dcae7e06647c2672a315e58e60cd0a5f0e4927951ee5"],
    [GgmlType.Q6_K, 210, "039fa588459b253f73b85fed6a4521363db7cfb83788b6085bf4d0970f4fd467"],
    [GgmlType.BF16, 2, "854e219e64c06b40dfdd1a14608110072f7effd5a4aec867d7b529b8a120f97b"],
  ];
  for (const [type, bb, hash] of golden) {
    const nb = 16;
    const qk = type === GgmlType.BF16 ? 1 : 256;
    const bytes = new Uint8Array(nb * bb);
    let s = 99 + type;
    for (let i = 0; i < bytes.length; i++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      bytes[i] = s & 255;
    }
    // Keep the FP16 scales (and BF16 values) small and finite.
    if (type === GgmlType.BF16) {
      for (let i = 1; i < bytes.length; i += 2) bytes[i] = bytes[i]! & 0xbf;
    } else {
      for (let b = 0; b < nb; b++) {
        for (const o of type === GgmlType.Q6_K ? [208] : [0, 2]) bytes[b * bb + o + 1] = bytes[b * bb + o + 1]! & 0x3b;
      }
    }
    const out = dequantize(type, bytes, nb * qk);
    assert.equal(createHash("sha256").update(new Uint8Array(out.buffer)).digest("hex"), hash, `type ${type}`);
  }
});

test("shapes have the published parameter counts", () => {
  assert.ok(Math.abs(paramCount(SHAPES["1b"]) / 1.1e9 - 1) < 0.01, `1b: ${paramCount(SHAPES["1b"])}`);
  assert.ok(Math.abs(paramCount(SHAPES["llama2-7b"]) / 6.738e9 - 1) < 0.01);
  assert.ok(Math.abs(paramCount(SHAPES["llama3-8b"]) / 8.03e9 - 1) < 0.01);
  assert.equal(llamaTensors(SHAPES.tiny).length, 1 + 9 * 2 + 2);
  for (const s of Object.values(SHAPES)) {
    assert.equal(s.dim % s.heads, 0, s.name);
    assert.equal(s.heads % s.kvHeads, 0, s.name);
  }
  // Q4_0 1B is ~0.6 GB.
  assert.ok(Math.abs(dataBytes(SHAPES["1b"], GgmlType.Q4_0) / 0.62e9 - 1) < 0.05);
});

test("synthesized tiny and small models read back with llama metadata, vocab and sane weights", async () => {
  const cases = [
    ...[GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q8_0, GgmlType.F16, GgmlType.F32].map((t) => ["tiny", t] as const),
    ...[GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K, GgmlType.BF16].map((t) => ["small", t] as const),
  ];
  for (const [shape, type] of cases) {
    const path = join(dir, `${shape}-${type}.gguf`);
    let last = 0;
    await synthesizeModel(shape, type, path, { seed: 42, onProgress: (done, total) => { last = done / total; } });
    assert.equal(last, 1);
    const f = await readGguf(path);
    const s = SHAPES[shape];
    assert.equal(getString(f, "general.architecture"), "llama");
    assert.equal(getNumber(f, "llama.block_count"), s.layers);
    assert.equal(getNumber(f, "llama.embedding_length"), s.dim);
    assert.equal(getNumber(f, "llama.feed_forward_length"), s.ffn);
    assert.equal(getNumber(f, "llama.attention.head_count"), s.heads);
    assert.equal(getNumber(f, "llama.attention.head_count_kv"), s.kvHeads);
    assert.equal(getNumber(f, "llama.rope.dimension_count"), s.dim / s.heads);
    assert.equal(getNumber(f, "llama.vocab_size"), s.vocab);
    assert.equal(getString(f, "tokenizer.ggml.model"), "gpt2");
    const tokens = getStringArray(f, "tokenizer.ggml.tokens");
    assert.equal(tokens.length, s.vocab);
    assert.deepEqual(tokens.slice(0, 256), byteToUnicode());
    assert.equal(tokens[getNumber(f, "tokenizer.ggml.bos_token_id")], "<s>");
    assert.equal(tokens[getNumber(f, "tokenizer.ggml.eos_token_id")], "</s>");
    assert.equal(getNumberArray(f, "tokenizer.ggml.token_type").length, s.vocab);
    assert.equal(f.tensors.length, 21);
    for (const t of f.tensors) assert.equal(t.type, t.name.includes("norm") ? GgmlType.F32 : type, t.name);
    assert.deepEqual([...dequantize(0, await tensorData(f, "blk.1.ffn_norm.weight"), s.dim)], new Array(s.dim).fill(1));
    // Weights: mean ~0, std ~1/sqrt(n_in), for a row-input tensor and the embedding.
    for (const [name, n] of [["blk.0.ffn_gate.weight", s.dim * s.ffn], ["token_embd.weight", s.dim * s.vocab]] as const) {
      const w = dequantize(type, await tensorData(f, name), n);
      const mean = w.reduce((a, b) => a + b, 0) / w.length;
      const std = Math.sqrt(w.reduce((a, b) => a + (b - mean) ** 2, 0) / w.length);
      assert.ok(Math.abs(mean) * Math.sqrt(s.dim) < 0.05, `${shape} type ${type} ${name} mean ${mean}`);
      assert.ok(Math.abs(std * Math.sqrt(s.dim) - 1) < 0.1, `${shape} type ${type} ${name} std ${std}`);
    }
  }
});

test("the q4_k_m mix puts output and llama.cpp's more-bits layers' attn_v / ffn_down in Q6_K", async () => {
  const path = join(dir, "small-q4_k_m.gguf");
  await synthesizeModel("small", GgmlType.Q4_K, path, { seed: 3, mix: "q4_k_m" });
  const f = await readGguf(path);
  const q6 = f.tensors.filter((t) => t.type === GgmlType.Q6_K).map((t) => t.name).sort();
  // 2 layers: use_more_bits(1, 2) holds (the last eighth rounds to layer 1), (0, 2) does not.
  assert.deepEqual(q6, ["blk.1.attn_v.weight", "blk.1.ffn_down.weight", "output.weight"]);
  for (const t of f.tensors) if (!q6.includes(t.name)) assert.equal(t.type, t.name.includes("norm") ? GgmlType.F32 : GgmlType.Q4_K, t.name);
  const down = dequantize(GgmlType.Q6_K, await tensorData(f, "blk.1.ffn_down.weight"), SHAPES.small.dim * SHAPES.small.ffn);
  const std = Math.sqrt(down.reduce((a, b) => a + b * b, 0) / down.length);
  assert.ok(Math.abs(std * Math.sqrt(SHAPES.small.ffn) - 1) < 0.1, `Q6_K ffn_down std ${std}`);
  await assert.rejects(synthesizeModel("small", GgmlType.Q4_0, join(dir, "bad-mix.gguf"), { mix: "q4_k_m" }), /mix "q4_k_m" needs type q4_k/);
});

test("synth is deterministic from the seed and aborts cleanly", async () => {
  const a = join(dir, "seed-a.gguf");
  const b = join(dir, "seed-b.gguf");
  const c = join(dir, "seed-c.gguf");
  await synthesizeModel("tiny", GgmlType.Q4_0, a, { seed: 5 });
  await synthesizeModel("tiny", GgmlType.Q4_0, b, { seed: 5 });
  await synthesizeModel("tiny", GgmlType.Q4_0, c, { seed: 6 });
  assert.ok((await readFile(a)).equals(await readFile(b)));
  assert.ok(!(await readFile(a)).equals(await readFile(c)));
  const sub = await mkdtemp(join(dir, "abort-"));
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(synthesizeModel("tiny", GgmlType.Q4_0, join(sub, "x.gguf"), { signal: ac.signal }), /aborted/);
  await assert.rejects(synthesizeModel("nope", GgmlType.Q4_0, join(sub, "y.gguf")), /unknown model shape "nope"/);
  await assert.rejects(synthesizeModel("tiny", GgmlType.I32, join(sub, "y.gguf")), /I32 is not supported/);
  await assert.rejects(synthesizeModel("tiny", GgmlType.Q6_K, join(sub, "y.gguf")), /row length 64 is not a multiple of the Q6_K block size 256/);
  assert.deepEqual(await readdir(sub), []);
});

test("tiny models: llama, qwen2, qwen3 read back exactly as written", async () => {
  for (const arch of ["llama", "qwen2", "qwen3"] as const) {
    for (const type of [GgmlType.F32, GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_1]) {
      const path = join(dir, `tinym-${arch}-${type}.gguf`);
      const m = await buildTinyModel(path, { arch, type, embdType: GgmlType.Q8_0, tied: arch === "qwen3", seed: 9 });
      const f = await readGguf(path);
      assert.equal(getString(f, "general.architecture"), arch);
      assert.equal(getNumber(f, `${arch}.embedding_length`), 64);
      assert.equal(getNumber(f, `${arch}.attention.head_count_kv`), 2);
      assert.equal(getString(f, "tokenizer.chat_template"), CHATML_TEMPLATE);
      const tokens = getStringArray(f, "tokenizer.ggml.tokens");
      assert.equal(tokens.length, TINY_VOCAB_SIZE);
      assert.deepEqual(tokens, m.tokens);
      assert.equal(tokens[m.config.eotId], "<|im_end|>");
      assert.ok(tokens.includes("Ġworld") && tokens.includes("<|im_start|>"));
      assert.deepEqual(getStringArray(f, "tokenizer.ggml.merges"), m.merges);
      const names = f.tensors.map((t) => t.name);
      assert.equal(names.includes("blk.0.attn_q.bias"), arch === "qwen2");
      assert.equal(names.includes("blk.1.attn_k_norm.weight"), arch === "qwen3");
      assert.equal(names.includes("output.weight"), arch !== "qwen3");
      assert.equal(f.tensors.length, m.weights.size);
      for (const t of f.tensors) {
        const w = m.weights.get(t.name)!;
        assert.deepEqual(t.dims, w.dims);
        assert.equal(t.type, w.type);
        assert.deepEqual(await tensorData(f, t.name), quantize(w.type, w.values), `${arch} ${t.name}`);
      }
      assert.equal(m.weights.get("token_embd.weight")!.type, GgmlType.Q8_0);
    }
  }
});

// Loading in llama.cpp proves the files are valid GGUF models, not just readable by us.
test("node-llama-cpp loads synthesized tiny (Q4_0) and small (Q4_K) llamas and the tiny models", async (t) => {
  let nlc: typeof import("node-llama-cpp");
  try {
    nlc = await import("node-llama-cpp");
  } catch {
    t.skip("node-llama-cpp is not installed");
    return;
  }
  const llama = await nlc.getLlama({ gpu: false, build: "never", logLevel: nlc.LlamaLogLevel.error });
  const paths: string[] = [];
  const synth = join(dir, "nlc-synth.gguf");
  await synthesizeModel("tiny", GgmlType.Q4_0, synth, { seed: 1 });
  const synthK = join(dir, "nlc-synth-k.gguf");
  await synthesizeModel("small", GgmlType.Q4_K, synthK, { seed: 1 });
  paths.push(synth, synthK);
  for (const arch of ["llama", "qwen2", "qwen3"] as const) {
    const p = join(dir, `nlc-${arch}.gguf`);
    await buildTinyModel(p, { arch, type: GgmlType.Q4_1, tied: arch === "llama" });
    paths.push(p);
  }
  for (const p of paths) {
    const model = await llama.loadModel({ modelPath: p });
    try {
      const ctx = await model.createContext({ contextSize: 64, threads: 1 });
      try {
        const isSynth = p === synth || p === synthK;
        if (!isSynth) assert.deepEqual(model.tokenize("Hello world"), [287, 290], p);
        const seq = ctx.getSequence();
        const out: number[] = [];
        for await (const tok of seq.evaluate(model.tokenize("Hello the cat"))) {
          out.push(tok);
          if (out.length >= 3) break;
        }
        assert.equal(out.length, 3, p);
        const vocab = p === synth ? SHAPES.tiny.vocab : p === synthK ? SHAPES.small.vocab : TINY_VOCAB_SIZE;
        assert.ok(out.every((x) => Number.isInteger(x) && x >= 0 && x < vocab), `${p}: ${out.join(",")}`);
      } finally {
        await ctx.dispose();
      }
    } finally {
      await model.dispose();
    }
  }
});
