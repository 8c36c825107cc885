// Every architecture against llama.cpp (node-llama-cpp) on random-weight tiny files our own
// writer makes: the first greedy token after each of 16 seeded prompts must agree on at least
// 15 (phi3 also with LongRoPE factors, short and long). Then phi3, whose fused tensors the
// engine splits at load and at conversion, through the flash paths: at sparsity 0 from flash it
// gives the dense engine's tokens, and a fixed sparsity gives the same tokens and logits
// whatever the budget. Bad phi3 files fail by name.
//
// llama.cpp runs with its flash-attention kernel off: the engine's attention follows llama.cpp's
// other path (f16 q.k, probabilities rounded to f16 against f16 values), and on these files it
// then matches llama.cpp's logits to float rounding, so agreement is not left to near-ties.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Engine } from "../src/index.js";
import { isActiveflowError } from "../src/errors.js";
import type { LoadOptions } from "../src/engine/types.js";
import { convertToFlash } from "../src/flash/convert.js";
import { GgmlType, typeName } from "../src/gguf/types.js";
import { calibrate } from "../src/sparsity/calibrate.js";
import { saveCalibration } from "../src/sparsity/store.js";
import { buildTinyModel, type TinyArch, type TinyShape } from "../src/synth/tinyModel.js";
import { greedy, maxAbsDiff, withEngine as loadFor } from "./helpers/engine.js";
import { LlamaCppRef } from "./helpers/llamacpp.js";
import { rng } from "./helpers/random.js";
import { rewriteF32, rewriteGguf } from "./helpers/rewrite.js";
import { defaultBackend } from "../src/backends/default.js";

const PROMPTS = 16;
const AGREE = 15;

// One row per architecture (and shape worth its own row). Add a row for a new architecture.
interface ParityRow {
  name: string;
  arch: TinyArch;
  type: number;
  shape?: Partial<TinyShape>;
  tied?: boolean;
  longRope?: { originalContext: number; attnFactor: number };
  ropeLinear?: { factor: number; typed: boolean };
}
const ROWS: ParityRow[] = [
  { name: "llama", arch: "llama", type: GgmlType.Q4_0, tied: true },
  // Mistral 7B is a llama file: 4 query heads per kv head, rope theta 1e6 (v0.2+), 32768 tokens (v0.3).
  { name: "mistral (llama)", arch: "llama", type: GgmlType.Q4_0, shape: { dim: 256, ffn: 512, heads: 8, kvHeads: 2, vocab: 32768, ropeTheta: 1e6 } },
  { name: "mistral3", arch: "mistral3", type: GgmlType.Q8_0 },
  // Linear rope scaling (long-context fine-tunes): with the type named, and by default.
  { name: "llama, linear rope x4", arch: "llama", type: GgmlType.Q8_0, ropeLinear: { factor: 4, typed: true } },
  { name: "qwen2, rope factor x2 (default type)", arch: "qwen2", type: GgmlType.Q8_0, ropeLinear: { factor: 2, typed: false } },
  { name: "qwen2", arch: "qwen2", type: GgmlType.Q8_0 },
  { name: "qwen3", arch: "qwen3", type: GgmlType.Q4_0, tied: true },
  { name: "phi3", arch: "phi3", type: GgmlType.Q4_0 },
  { name: "phi3 F32", arch: "phi3", type: GgmlType.F32, shape: { dim: 96, ffn: 160, heads: 3, kvHeads: 1 } },
  // LongRoPE as Phi-3-mini-128k has it (attn_factor sqrt(1 + ln 32 / ln 4096)); both sides run
  // a 64-token context, under the original context (short factors) or over it (long ones).
  { name: "phi3 LongRoPE short", arch: "phi3", type: GgmlType.Q4_0, longRope: { originalContext: 4096, attnFactor: 1.19 } },
  { name: "phi3 LongRoPE long", arch: "phi3", type: GgmlType.Q4_0, longRope: { originalContext: 32, attnFactor: 1.19 } },
];

let dir = "";
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "af-arch-"));
});
after(async () => {
  if (dir !== "") await rm(dir, { recursive: true, force: true });
});

function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

const withEngine = <T>(path: string, options: LoadOptions, fn: (e: Engine) => Promise<T>): Promise<T> => loadFor(path, { threads: 1, contextLength: 64, ...options }, fn);

for (const [i, row] of ROWS.entries()) {
  test(`${row.name} (${typeName(row.type)}): the first greedy token agrees with llama.cpp on >= ${AGREE} of ${PROMPTS} prompts`, async (t) => {
    const m = await buildTinyModel(join(dir, `parity-${i}.gguf`), {
      arch: row.arch, type: row.type, embdType: GgmlType.Q8_0, seed: 2, ...(row.shape ? { shape: row.shape } : {}), ...(row.tied ? { tied: true } : {}),
      ...(row.longRope ? { longRope: row.longRope } : {}), ...(row.ropeLinear ? { ropeLinear: row.ropeLinear } : {}),
    });
    const ref = await LlamaCppRef.load(m.path, { threads: 1, contextSize: 64, flashAttention: false });
    if (typeof ref === "string") {
      t.skip(ref);
      return;
    }
    try {
      const next = rng(100 + i);
      let agree = 0;
      const differ: string[] = [];
      await withEngine(m.path, {}, async (e) => {
        for (let p = 0; p < PROMPTS; p++) {
          // 1 to 40 tokens: longer than phi3's sliding window of 8, which llama.cpp ignores.
          const ids = Array.from({ length: 1 + Math.floor(next() * 40) }, () => Math.floor(next() * m.config.vocab));
          const ours = (await greedy(e, ids, 1)).ids[0];
          // From the logits: llama.cpp's generation stops before an end-of-generation token.
          const theirs = argmax((await ref.teacherForced(ids)).at(-1)!);
          if (ours === theirs) agree++;
          else differ.push(`prompt ${p} (${ids.length} tokens): ours ${ours}, llama.cpp ${theirs}`);
        }
      });
      t.diagnostic(`${row.name}: ${agree}/${PROMPTS} agree${differ.length ? `; ${differ.join("; ")}` : ""}`);
      assert.ok(agree >= AGREE, `${row.name}: ${agree}/${PROMPTS} first tokens agree with llama.cpp: ${differ.join("; ")}`);
    } finally {
      await ref.dispose();
    }
  });
}

// phi3 through the flash paths. Q4_0 linear weights split on flash (the source's values) and
// an F32 embedding and head; its twin holds the same values in F32 everywhere, which the dense
// engine computes with float activations, as the column kernels do. LongRoPE factors are
// resident tensors of the flash file.
// 4 layers of dim 512 and ffn 1536: 6.8 MB of extents, more than the hot cache the minimum
// budget leaves, so the small budget evicts and rereads.
const PHI3_SHAPE: Partial<TinyShape> = { dim: 512, ffn: 1536, heads: 8, kvHeads: 2, vocab: 512, layers: 4 };
const GEN = [[1, 17, 300, 42, 99, 7], [256, 3, 3, 3, 511, 128, 64, 5, 200, 201, 202], [9]];
const IDS = [5, 300, 17, 42, 42, 99, 1, 7, 500, 3, 256, 128, 64, 2, 31, 400, 11, 12, 13, 14, 90, 91, 92, 93];

interface Run {
  gens: number[][];
  logits: Float32Array[];
  read: number;
}

async function run(path: string, options: LoadOptions): Promise<Run> {
  return withEngine(path, options, async (e) => {
    const gens: number[][] = [];
    let read = 0;
    for (const p of GEN) {
      const g = await greedy(e, p, 10);
      gens.push(g.ids);
      read += g.stats.flash?.flashBytesRead ?? 0;
    }
    return { gens, logits: (await e.evaluateLogits(IDS)).map((l) => Float32Array.from(l)), read };
  });
}

let phi3Promise: Promise<{ twin: string; flash: string; min: number }> | undefined;
function phi3Files(): Promise<{ twin: string; flash: string; min: number }> {
  phi3Promise ??= (async () => {
    const m = await buildTinyModel(join(dir, "phi3-q4_0.gguf"), {
      arch: "phi3", type: GgmlType.Q4_0, embdType: GgmlType.F32, shape: PHI3_SHAPE, seed: 4, longRope: { originalContext: 4096, attnFactor: 1.19 },
    });
    const twin = join(dir, "phi3-twin.gguf");
    await rewriteF32(m.path, twin, () => true);
    const flash = join(dir, "phi3-q4_0.af.gguf");
    const report = await convertToFlash(defaultBackend(), m.path, flash, { groupSize: 1 });
    for (const s of report.sites) assert.equal(s.layout, "split", `${s.site} is split`);
    assert.deepEqual(report.sites.find((s) => s.site === "attn_in")!.tensors, ["attn_q", "attn_k", "attn_v"]);
    assert.deepEqual(report.sites.find((s) => s.site === "ffn_in")!.nOut, [1536, 1536]);
    await withEngine(flash, {}, async (e) => saveCalibration(flash, await calibrate(e, { text: "The quick brown fox jumps over the lazy dog. ".repeat(12) })));
    const min = await withEngine(flash, {}, async (e) => e.plan!.minimumBytes);
    return { twin, flash, min };
  })();
  return phi3Promise;
}

test("phi3 at sparsity 0 from flash, budgeted and not: the dense engine's tokens, logits within 1e-3", async () => {
  const { twin, flash, min } = await phi3Files();
  const dense = await run(twin, {});
  for (const dram of [min + 64 * 1024, 1 << 30]) {
    const f = await run(flash, { dram, verifyReads: true });
    assert.deepEqual(f.gens, dense.gens, `budget ${dram}`);
    // Same values; column axpy vs row dot order, and the F16 KV cache (swap.test.ts (b)).
    const d = maxAbsDiff(f.logits, dense.logits);
    assert.ok(d < 1e-3, `budget ${dram}: max |logit difference| ${d}`);
  }
});

test("phi3 at sparsity 0.5: identical tokens and logits at the minimum budget and with everything cached", async () => {
  const { flash, min } = await phi3Files();
  const small = await run(flash, { dram: min + 64 * 1024, sparsity: 0.5 });
  const all = await run(flash, { dram: 1 << 30, sparsity: 0.5 });
  assert.ok(small.read > all.read, `the small budget misses its cache: read ${small.read} vs ${all.read}`);
  assert.deepEqual(small.gens, all.gens);
  assert.equal(maxAbsDiff(small.logits, all.logits), 0, "logits differ between budgets");
});

test("phi3: a fused tensor or LongRoPE factors of the wrong size and a qkv bias are refused by name", async () => {
  const m = await buildTinyModel(join(dir, "phi3-bad-src.gguf"), { arch: "phi3", type: GgmlType.F32 });
  const oneLine = (e: unknown, code: string, re: RegExp): boolean =>
    isActiveflowError(e) && e.code === code && re.test(e.message) && !e.message.includes("\n");

  // q 64 + k 32 + v 32 = 128 rows expected on the tiny shape; the file has 120.
  const badQkv = join(dir, "phi3-bad-qkv.gguf");
  await rewriteGguf(m.path, badQkv, (t) =>
    t.name === "blk.1.attn_qkv.weight" ? { ...t, dims: [64, 120], data: t.data.subarray(0, 64 * 120 * 4) } : t);
  const qkvMsg = /tensor blk\.1\.attn_qkv\.weight has dims \[64, 120\], expected \[64, 128\] \(attn_q 64 \+ attn_k 32 \+ attn_v 32 rows\)/;
  await assert.rejects(Engine.load(badQkv), (e: unknown) => oneLine(e, "MODEL_BAD_SHAPE", qkvMsg));
  await assert.rejects(convertToFlash(defaultBackend(), badQkv, join(dir, "phi3-bad-qkv.af.gguf")), (e: unknown) => oneLine(e, "MODEL_BAD_SHAPE", qkvMsg));

  const badUp = join(dir, "phi3-bad-up.gguf");
  await rewriteGguf(m.path, badUp, (t) => (t.name === "blk.0.ffn_up.weight" ? { ...t, dims: [64, 128], data: t.data.subarray(0, 64 * 128 * 4) } : t));
  await assert.rejects(Engine.load(badUp), (e: unknown) =>
    oneLine(e, "MODEL_BAD_SHAPE", /tensor blk\.0\.ffn_up\.weight has dims \[64, 128\], expected \[64, 256\] \(ffn_gate 128 \+ ffn_up 128 rows\)/));

  const f32 = (name: string, n: number): { name: string; dims: number[]; type: number; data: Uint8Array } =>
    ({ name, dims: [n], type: GgmlType.F32, data: new Uint8Array(new Float32Array(n).fill(1).buffer) });
  const longRope = join(dir, "phi3-longrope.gguf");
  await rewriteGguf(m.path, longRope, (t) => t, [f32("rope_factors_long.weight", 8), f32("rope_factors_short.weight", 5)]);
  await assert.rejects(Engine.load(longRope), (e: unknown) =>
    oneLine(e, "MODEL_BAD_SHAPE", /tensor rope_factors_short\.weight has dims \[5\], expected \[8\] \(rope\.dimension_count \/ 2\)/));

  const qkvBias = join(dir, "phi3-qkv-bias.gguf");
  await rewriteGguf(m.path, qkvBias, (t) => t, [f32("blk.0.attn_qkv.bias", 128)]);
  await assert.rejects(Engine.load(qkvBias), (e: unknown) => oneLine(e, "MODEL_UNSUPPORTED", /tensor attn_qkv\.bias is not supported/));

  // Output and FFN biases are not applied, so a file with them is refused, never run wrong.
  const outBias = join(dir, "phi3-out-bias.gguf");
  await rewriteGguf(m.path, outBias, (t) => t, [f32("blk.1.attn_output.bias", 64)]);
  await assert.rejects(Engine.load(outBias), (e: unknown) => oneLine(e, "MODEL_UNSUPPORTED", /tensor blk\.1\.attn_output\.bias is not supported/));
});
