// Gemma 2 and Gemma 3 against llama.cpp (node-llama-cpp) on tiny random-weight models
// (src/synth/tinyModel.ts): the first greedy token of 16 prompts must agree on at least 15,
// with a sliding window of 4 positions, shorter than every prompt, so the windowed layers'
// masking decides the result; teacher-forced distributions must agree closely too. The
// acceptance is against llama.cpp's unfused attention, whose f16 rounding ours reproduces;
// against node-llama-cpp's default flash attention (f16 sums) only near ties may differ. Then
// the window itself: without it the same weights give other logits past the window and the
// same ones before it. Skips, saying why, when node-llama-cpp is missing.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Engine } from "../src/index.js";
import { GgmlType } from "../src/gguf/types.js";
import { buildTinyModel, type TinyArch } from "../src/synth/tinyModel.js";
import { greedy } from "./helpers/engine.js";
import { LlamaCppRef, compareDistributions } from "./helpers/llamacpp.js";

const WINDOW = 4;
const SEED = 1;
const PROMPTS = [
  "Hello world, the cat sat on the mat",
  "the weather is nice today in the city of",
  "once upon a time there was a small village by the sea",
  "def add(a, b):\n    return a + b",
  "Here are three tips for staying healthy: 1.",
  "The capital of France is Paris and the capital of Italy is",
  "<|im_start|>user\nWhy is the sky blue?<|im_end|>\n",
  "she sells sea shells on the sea shore",
  "In 1969 the first people walked on the moon.",
  "red, green, blue, yellow, orange, purple,",
  "To be or not to be, that is the question",
  "the quick brown fox jumps over the lazy dog",
  "SELECT name FROM users WHERE age > 30;",
  "A B C D E F G H I J K",
  "hello hello hello hello hello",
  "water boils at one hundred degrees and freezes at",
];
const AGREE_MIN = 15;
// Against unfused llama.cpp the tiny models agree to rounding: positions match to 1e-14 until
// a value lands on the other side of an f16 rounding boundary in one of the two, and the
// keys and values cached there carry that (about 1e-4) to every later position. Against
// its default flash attention, the SmolLM2 parity test's bound and near-tie rule.
const MEAN_KL_MAX_UNFUSED = 1e-3;
const MEAN_KL_MAX = 0.01;
const NEAR_TIE_NATS = 0.5;

const dir = await mkdtemp(join(tmpdir(), "af-gemma-parity-"));
after(() => rm(dir, { recursive: true, force: true }));

interface Agreement {
  agree: number;
  // Prompts where the first tokens differ, with llama.cpp's own log-prob gap between the two.
  misses: { text: string; want: number; got: number; gap: number }[];
  kl: ReturnType<typeof compareDistributions>;
  tokens: number;
}

async function agreement(ref: LlamaCppRef, engine: Engine): Promise<Agreement> {
  let agree = 0;
  const misses: Agreement["misses"] = [];
  for (const text of PROMPTS) {
    const ids = ref.tokenize(text, { parseSpecial: true });
    assert.ok(ids.length > WINDOW, `prompt ${JSON.stringify(text)} is only ${ids.length} tokens`);
    const want = (await ref.greedy(ids, 1)).ids[0]!;
    const got = (await greedy(engine, ids, 1)).ids[0]!;
    if (want === got) {
      agree++;
      continue;
    }
    const rows = await ref.teacherForced(ids);
    const last = rows[rows.length - 1]!;
    misses.push({ text, want, got, gap: last[want]! - last[got]! });
  }
  const ids = ref.tokenize(PROMPTS.join(" "), { parseSpecial: true }).slice(0, 96);
  const kl = compareDistributions(await ref.teacherForced(ids), await engine.evaluateLogits(ids));
  return { agree, misses, kl, tokens: ids.length };
}

function report(arch: string, how: string, a: Agreement): string {
  console.log(
    `gemma-parity/${arch} vs llama.cpp (${how}): first greedy token agrees on ${a.agree} of ${PROMPTS.length} prompts; ` +
      `teacher-forced over ${a.tokens} tokens top-1 ${(a.kl.top1 * 100).toFixed(1)} %, mean KL ${a.kl.meanKl.toExponential(2)}, max KL ${a.kl.maxKl.toExponential(2)}`,
  );
  const misses = a.misses.map((m) => `${JSON.stringify(m.text)}: llama.cpp ${m.want}, ours ${m.got}, llama.cpp's log-prob gap ${m.gap.toFixed(4)}`);
  for (const m of misses) console.log(`  ${m}`);
  return misses.join("; ");
}

for (const arch of ["gemma2", "gemma3"] as const satisfies readonly TinyArch[]) {
  test(`${arch}: first greedy token and distributions match llama.cpp across a ${WINDOW}-position sliding window`, { timeout: 300_000 }, async (t) => {
    const path = join(dir, `${arch}.gguf`);
    await buildTinyModel(path, { arch, type: GgmlType.Q8_0, seed: SEED, slidingWindow: WINDOW });
    const unfused = await LlamaCppRef.load(path, { threads: 1, contextSize: 256, batchSize: 256, flashAttention: false });
    if (typeof unfused === "string") return t.skip(unfused);
    const fused = await LlamaCppRef.load(path, { threads: 1, contextSize: 256, batchSize: 256 });
    const engine = await Engine.load(path, { threads: 1, contextLength: 256 });
    try {
      // The acceptance: llama.cpp's unfused attention, whose rounding ours reproduces.
      const u = await agreement(unfused, engine);
      const uMisses = report(arch, "unfused attention", u);
      assert.ok(u.agree >= AGREE_MIN, `${arch}: first token agrees on ${u.agree} of ${PROMPTS.length}: ${uMisses}`);
      assert.ok(u.kl.meanKl <= MEAN_KL_MAX_UNFUSED, `${arch}: mean KL ${u.kl.meanKl} against unfused llama.cpp`);
      // node-llama-cpp's default flash attention sums values in f16: on these flat tiny
      // distributions that can flip a near tie, never a confident choice.
      if (typeof fused === "string") throw new Error(fused);
      const f = await agreement(fused, engine);
      const fMisses = report(arch, "default flash attention", f);
      assert.deepEqual(f.misses.filter((m) => !(m.gap < NEAR_TIE_NATS)).map((m) => m.text), [], `${arch}: confident disagreements: ${fMisses}`);
      assert.ok(f.kl.meanKl <= MEAN_KL_MAX, `${arch}: mean KL ${f.kl.meanKl} against llama.cpp's default`);
    } finally {
      await engine.dispose();
      await unfused.dispose();
      if (typeof fused !== "string") await fused.dispose();
    }
  });

  test(`${arch}: the sliding window changes logits only past the window`, async () => {
    const windowed = join(dir, `${arch}-w.gguf`);
    const wide = join(dir, `${arch}-wide.gguf`);
    await buildTinyModel(windowed, { arch, type: GgmlType.Q8_0, seed: SEED, slidingWindow: WINDOW });
    await buildTinyModel(wide, { arch, type: GgmlType.Q8_0, seed: SEED, slidingWindow: 1024 });
    const a = await Engine.load(windowed, { threads: 1, contextLength: 64 });
    const b = await Engine.load(wide, { threads: 1, contextLength: 64 });
    try {
      const ids = Array.from({ length: 12 }, (_, i) => 40 + ((i * 37) % 200));
      const la = await a.evaluateLogits(ids);
      const lb = await b.evaluateLogits(ids);
      for (let p = 0; p < ids.length; p++) {
        let diff = 0;
        for (let v = 0; v < la[p]!.length; v++) diff = Math.max(diff, Math.abs(la[p]![v]! - lb[p]![v]!));
        if (p < WINDOW) assert.equal(diff, 0, `${arch} position ${p}: inside the window the logits must not change`);
        else assert.ok(diff > 1e-3, `${arch} position ${p}: past the window the logits moved only ${diff}`);
      }
    } finally {
      await a.dispose();
      await b.dispose();
    }
  });
}
