// Mixture-of-experts models, dense: the router against a float reference, prefill (tokens
// grouped by expert) against decode, threads, the synth shapes, bad files, and the modes
// that refuse MoE models for now (calibration, sparsity). Experts on flash: moe-flash.test.ts.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadAddon } from "../src/backends/native/binding.js";
import { Engine } from "../src/index.js";
import { isActiveflowError } from "../src/errors.js";
import { GgmlType } from "../src/gguf/types.js";
import { getShape, paramCount } from "../src/synth/shapes.js";
import { synthesizeModel } from "../src/synth/synth.js";
import { buildTinyModel } from "../src/synth/tinyModel.js";
import { greedy } from "./helpers/engine.js";
import { gaussian } from "./helpers/random.js";
import { runCli } from "./helpers/cli.js";

const dir = mkdtempSync(join(tmpdir(), "af-moe-"));
after(() => rmSync(dir, { recursive: true, force: true }));

// Float64 reference of llama.cpp's softmax gating: softmax over all logits, the k largest
// (lower index first on a tie), their probabilities, divided by their sum when norm.
function routeReference(logits: Float32Array, k: number, norm: boolean): { experts: number[]; weights: number[] } {
  const max = Math.max(...logits);
  const e = Array.from(logits, (v) => Math.exp(v - max));
  const sum = e.reduce((a, b) => a + b, 0);
  const p = e.map((v) => v / sum);
  const order = p.map((_, i) => i).sort((a, b) => p[b]! - p[a]! || a - b).slice(0, k);
  const w = order.map((i) => p[i]!);
  const s = w.reduce((a, b) => a + b, 0);
  return { experts: order, weights: norm ? w.map((v) => v / s) : w };
}

test("routing: top-k experts and their weights match a float reference, renormalised or not, ties to the lower index", () => {
  const addon = loadAddon();
  let seed = 1;
  for (const [n, k] of [[8, 2], [16, 4], [64, 8], [128, 8], [4, 4], [3, 1]] as const) {
    for (const norm of [true, false]) {
      for (let rep = 0; rep < 20; rep++) {
        const logits = gaussian(n, seed++, 2);
        const got = addon.moeRoute(logits, k, norm);
        const want = routeReference(logits, k, norm);
        assert.deepEqual(Array.from(got.experts), want.experts, `n ${n}, k ${k}, seed ${seed - 1}`);
        for (let j = 0; j < k; j++) assert.ok(Math.abs(got.weights[j]! - want.weights[j]!) < 2e-6, `weight ${j}: ${got.weights[j]} vs ${want.weights[j]}`);
        const total = got.weights.reduce((a, b) => a + b, 0);
        if (norm) assert.ok(Math.abs(total - 1) < 1e-5, `renormalised weights sum to ${total}`);
        else assert.ok(total < 1 + 1e-5 && (k < n || Math.abs(total - 1) < 1e-5), `softmax weights of ${k} of ${n} sum to ${total}`);
      }
    }
  }
  // Ties: equal logits pick the lower index first; k = n keeps every expert.
  const tie = addon.moeRoute(Float32Array.of(1, 3, 3, 0, 3), 2, true);
  assert.deepEqual(Array.from(tie.experts), [1, 2]);
  assert.deepEqual(Array.from(tie.weights), [0.5, 0.5]);
  assert.deepEqual(Array.from(addon.moeRoute(Float32Array.of(0, 1), 2, false).experts), [1, 0]);
  assert.throws(() => addon.moeRoute(Float32Array.of(0, 1), 3, true), /k = 3 of 2 logits/);
});

async function tinyMoe(name: string, arch: "llama" | "qwen3moe" | "qwen2moe", type: number): Promise<string> {
  const path = join(dir, name);
  await buildTinyModel(path, { arch, type, experts: arch === "llama" ? { count: 8, used: 2, ffn: 128 } : { count: 16, used: 4, ffn: 64 }, seed: 5 });
  return path;
}

test("prefill (tokens grouped by expert) gives the tokens decode gives, with 1 and 2 threads", { timeout: 120_000 }, async () => {
  for (const arch of ["llama", "qwen3moe", "qwen2moe"] as const) {
    const path = await tinyMoe(`pd-${arch}.gguf`, arch, GgmlType.Q8_0);
    const prompt = Array.from({ length: 9 }, (_, i) => 20 + 17 * i);
    const logits: Float32Array[][] = [];
    for (const threads of [1, 2]) {
      const e = await Engine.load(path, { threads });
      try {
        // Decode: one token at a time through the grouping path with one token per expert.
        const gen = (await greedy(e, prompt, 40)).ids;
        // Prefill: the whole sequence at once, every expert with many tokens.
        const all = await e.evaluateLogits([...prompt, ...gen]);
        const argmax = (row: Float32Array) => row.reduce((b, v, i, a) => (v > a[b]! ? i : b), 0);
        const fromPrefill = all.slice(prompt.length - 1, -1).map(argmax);
        assert.deepEqual(fromPrefill, gen, `${arch}, ${threads} threads: decode and prefill part`);
        logits.push(all);
      } finally {
        await e.dispose();
      }
    }
    const [one, two] = logits;
    let maxDiff = 0;
    for (let t = 0; t < one!.length; t++) for (let i = 0; i < one![t]!.length; i++) maxDiff = Math.max(maxDiff, Math.abs(one![t]![i]! - two![t]![i]!));
    assert.ok(maxDiff < 1e-4, `${arch}: 1 and 2 threads differ by ${maxDiff}`);
  }
});

test("synth MoE shapes: parameter counts of the real models, and tiny-moe runs in every weight type", { timeout: 120_000 }, async () => {
  // Mixtral-8x7B: 46.7B parameters; Qwen3-30B-A3B: 30.5B.
  assert.ok(Math.abs(paramCount(getShape("mixtral-8x7b")) / 46.70e9 - 1) < 0.01, `mixtral ${paramCount(getShape("mixtral-8x7b"))}`);
  assert.ok(Math.abs(paramCount(getShape("qwen3-30b-a3b")) / 30.53e9 - 1) < 0.01, `qwen3 ${paramCount(getShape("qwen3-30b-a3b"))}`);
  // OLMoE-1B-7B: 6.92B; Mixtral with 8 of 32 layers: its per-layer share plus the whole embedding and head.
  assert.ok(Math.abs(paramCount(getShape("olmoe-1b-7b")) / 6.92e9 - 1) < 0.01, `olmoe ${paramCount(getShape("olmoe-1b-7b"))}`);
  const embd = 2 * 32000 * 4096;
  assert.ok(Math.abs((paramCount(getShape("mixtral-8x7b-8l")) - embd) / ((46.70e9 - embd) / 4) - 1) < 0.01, `mixtral-8l ${paramCount(getShape("mixtral-8x7b-8l"))}`);
  for (const type of [GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q8_0, GgmlType.Q4_K, GgmlType.Q6_K, GgmlType.F16, GgmlType.BF16]) {
    const path = join(dir, `synth-${type}.gguf`);
    await synthesizeModel("tiny-moe", type, path, { seed: 2 });
    const e = await Engine.load(path, { threads: 1 });
    try {
      assert.equal(e.config.moe?.nExpert, 4);
      const out = await greedy(e, [1, 300, 301, 302], 4);
      assert.equal(out.ids.length, 4);
      const logits = await e.evaluateLogits([1, 300, 301]);
      assert.ok(logits.every((row) => row.every(Number.isFinite)), `type ${type}: logits are finite`);
    } finally {
      await e.dispose();
    }
  }
});

// The offset of a u32 metadata value, found by its key (key, then type u32, then the value).
function u32ValueAt(buf: Buffer, key: string): number {
  const at = buf.indexOf(Buffer.from(key));
  assert.ok(at > 0, key);
  return at + key.length + 4;
}

async function expectLoadError(buf: Buffer, name: string, code: string, pattern: RegExp): Promise<void> {
  const path = join(dir, name);
  await writeFile(path, buf);
  await assert.rejects(Engine.load(path, { threads: 1 }), (e: unknown) => {
    assert.ok(isActiveflowError(e), String(e));
    assert.equal(e.code, code, e.message);
    assert.match(e.message, pattern);
    assert.ok(!e.message.includes("\n"), "one line");
    return true;
  });
}

test("bad MoE files: zero experts, more used than there are, missing or misshapen expert tensors", async () => {
  const good = await readFile(await tinyMoe("bad-src.gguf", "qwen3moe", GgmlType.Q8_0));
  let b = Buffer.from(good);
  b.writeUInt32LE(0, u32ValueAt(b, "qwen3moe.expert_count"));
  await expectLoadError(b, "zero.gguf", "GGUF_BAD_VALUE", /qwen3moe\.expert_count must be a positive integer for qwen3moe, found 0/);
  b = Buffer.from(good);
  b.writeUInt32LE(17, u32ValueAt(b, "qwen3moe.expert_used_count"));
  await expectLoadError(b, "used.gguf", "GGUF_BAD_VALUE", /qwen3moe\.expert_used_count = 17 must be from 1 to qwen3moe\.expert_count = 16/);
  b = Buffer.from(good);
  b.writeUInt32LE(32, u32ValueAt(b, "qwen3moe.expert_feed_forward_length"));
  await expectLoadError(b, "shape.gguf", "MODEL_BAD_SHAPE", /tensor blk\.0\.ffn_gate_exps\.weight has shape \[64, 64, 16\], expected \[64, 32, 16\]/);
  b = Buffer.from(good);
  const at = b.indexOf(Buffer.from("blk.1.ffn_up_exps.weight"));
  b.write("blk.1.ffn_up_expz.weight", at);
  await expectLoadError(b, "missing.gguf", "MODEL_MISSING_TENSOR", /model has no tensor blk\.1\.ffn_up_exps\.weight/);
});

test("MoE models refuse calibration and sparsity at once, saying so", async () => {
  const path = await tinyMoe("refuse.gguf", "llama", GgmlType.Q4_0);
  const unsupported = (what: RegExp) => (e: unknown) => {
    assert.ok(isActiveflowError(e), String(e));
    assert.equal(e.code, "MODEL_UNSUPPORTED", e.message);
    assert.match(e.message, what);
    assert.match(e.message, /not supported for mixture-of-experts models yet \(llama, 8 experts\); they run without contextual sparsity/);
    return true;
  };
  await assert.rejects(Engine.load(path, { sparsity: 0.5 }), unsupported(/contextual sparsity/));
  await assert.rejects(Engine.load(path, { sparsity: 0.5, dram: "50%" }), unsupported(/contextual sparsity/));
  const cal = await runCli(["calibrate", path]);
  assert.equal(cal.code, 1, cal.err);
  assert.match(cal.err, /calibration is not supported for mixture-of-experts models yet/);
  // Dense run, chat and eval work, from the CLI too.
  const ok = await runCli(["run", path, "-p", "Hello world", "-n", "4", "--greedy"]);
  assert.equal(ok.code, 0, ok.err);
  const chat = await runCli(["chat", path, "-n", "4"], { stdin: "Hello\n" });
  assert.equal(chat.code, 0, chat.err);
  const text = join(dir, "text.txt");
  await writeFile(text, "Hello world, the weather is fine and the sea is calm. ".repeat(20));
  const ev = await runCli(["eval", path, "--text", text, "--window", "64", "--max-tokens", "200", "--json"]);
  assert.equal(ev.code, 0, ev.err);
  const q = JSON.parse(ev.out.trim().split("\n").at(-1)!) as { ppl: number; tokens: number };
  assert.ok(Number.isFinite(q.ppl) && q.ppl > 1 && q.tokens > 100, ev.out);
  const evSparse = await runCli(["eval", path, "--text", text, "--sparsity", "0.5"]);
  assert.notEqual(evSparse.code, 0);
  assert.match(evSparse.err, /needs the calibration table|mixture-of-experts/);
  const e = await Engine.load(path, { threads: 1 });
  try {
    assert.throws(() => e.setThresholds(new Float32Array(e.config.nLayer * 4)), (err: unknown) => isActiveflowError(err) && err.code === "MODEL_UNSUPPORTED");
  } finally {
    await e.dispose();
  }
});
