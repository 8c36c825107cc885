// Gemma 2 and Gemma 3 in flash mode, under the rules the other architectures follow
// (test/convert.test.ts, test/swap.test.ts): conversion keeps the post-norms and q/k norms
// resident and the config unchanged; sparsity 0 from flash matches the dense engine; sparse
// runs keep fewer inputs at every site, dense and flash, and give bit-identical tokens and
// logits at two budgets; the resident set stays inside the budget, and a budget below the
// minimum is refused. Tiny F32 models
// with a 4-position sliding window, so the windowed layers matter at these lengths.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Engine } from "../src/index.js";
import { isActiveflowError } from "../src/errors.js";
import type { LoadOptions } from "../src/engine/types.js";
import { SWAP_THREADS_DEFAULT } from "../src/engine/types.js";
import { convertToFlash } from "../src/flash/convert.js";
import { openFlashModel } from "../src/flash/open.js";
import { readGguf } from "../src/gguf/reader.js";
import { GgmlType } from "../src/gguf/types.js";
import { fmt } from "../src/memory/budget.js";
import { readModelConfig } from "../src/model/config.js";
import { calibrate } from "../src/sparsity/calibrate.js";
import { saveCalibration } from "../src/sparsity/store.js";
import { buildTinyModel } from "../src/synth/tinyModel.js";
import { rng } from "./helpers/random.js";
import { greedy, maxAbsDiff, withEngine as loadFor } from "./helpers/engine.js";
import { defaultBackend } from "../src/backends/default.js";

const CTX = 64;
const WINDOW = 4;
const SPARSITY = 0.5;
// Flash (column axpy) and dense (row dot) sum in different orders; where that moves a key or
// value across an f16 rounding boundary of the KV cache, every later position carries it.
// One f16 step moves these narrow tiny models' logits more than test/swap.test.ts's wider
// model's (the tiny llama shows the same size of difference), hence a looser bound than its
// 1e-3, still far below what a wrong norm, activation or window would do.
const FLASH_VS_DENSE = 5e-3;
const PROMPTS = [
  [40, 17, 200, 42, 99, 7, 120],
  [256, 3, 3, 3, 211, 128, 64, 5, 200, 201, 202],
  [9],
];

const dir = await mkdtemp(join(tmpdir(), "af-gemma-modes-"));
after(() => rm(dir, { recursive: true, force: true }));

const withEngine = <T>(path: string, options: LoadOptions, fn: (e: Engine) => Promise<T>): Promise<T> => loadFor(path, { contextLength: CTX, ...options }, fn);

function randomIds(seed: number, n: number, vocab: number): number[] {
  const next = rng(seed);
  return Array.from({ length: n }, () => Math.floor(next() * vocab));
}

// Greedy tokens of PROMPTS and logits of 40 random ids (past the window).
async function outputs(e: Engine): Promise<{ gens: number[][]; logits: Float32Array[]; read: number; active: Record<string, number>[] }> {
  const gens: number[][] = [];
  let read = 0;
  const active: Record<string, number>[] = [];
  for (const p of PROMPTS) {
    const g = await greedy(e, p, 12);
    gens.push(g.ids);
    read += g.stats.flash?.flashBytesRead ?? 0;
    if (g.stats.flash) active.push(g.stats.flash.activeFraction);
  }
  const logits = (await e.evaluateLogits(randomIds(11, 40, e.config.nVocab))).map((l) => Float32Array.from(l));
  return { gens, logits, read, active };
}

for (const arch of ["gemma2", "gemma3"] as const) {
  test(`${arch}: flash conversion, dense parity, sparsity in force, budgets`, { timeout: 300_000 }, async () => {
    const src = join(dir, `${arch}.gguf`);
    const flash = join(dir, `${arch}.af.gguf`);
    await buildTinyModel(src, { arch, type: GgmlType.F32, seed: 5, slidingWindow: WINDOW, contextLength: 256 });
    await convertToFlash(defaultBackend(), src, flash, { groupSize: 2 });

    // Conversion: norms stay resident under their names, the linear sites do not, and the
    // config read from the flash file is the source's.
    const fm = await openFlashModel(flash);
    const names = fm.resident.map((t) => t.name);
    for (const n of ["blk.1.post_attention_norm.weight", "blk.1.post_ffw_norm.weight", "token_embd.weight", "output_norm.weight"]) {
      assert.ok(names.includes(n), `${arch}: ${n} resident`);
    }
    assert.equal(names.includes("blk.1.attn_k_norm.weight"), arch === "gemma3");
    assert.ok(!names.some((n) => /attn_q\.weight|ffn_down\.weight/.test(n)));
    assert.deepEqual(readModelConfig(await readGguf(flash)), { ...readModelConfig(await readGguf(src)) });

    // (b) Sparsity 0 from flash matches the dense engine (F32 columns).
    const dense = await withEngine(src, {}, outputs);
    const full = await withEngine(flash, { dram: 1 << 30 }, outputs);
    assert.deepEqual(full.gens, dense.gens, `${arch}: flash tokens`);
    assert.ok(maxAbsDiff(full.logits, dense.logits) < FLASH_VS_DENSE, `${arch}: max |logit difference| ${maxAbsDiff(full.logits, dense.logits)}`);

    // Thresholds measured on the flash model, also given to the source (its sidecar).
    const table = await withEngine(flash, {}, (e) => calibrate(e, { text: "The quick brown fox jumps over the lazy dog. ".repeat(12) }));
    await saveCalibration(flash, table);
    await saveCalibration(src, table);

    // Sparse, every site (the down site's input is gelu(gate) * up): thresholds in force at
    // each site, dense and flash alike. Their logits are not compared: a summation-order
    // difference that moves an input across its threshold changes what is kept from there on.
    const denseSparse = await withEngine(src, { sparsity: SPARSITY }, async (e) => {
      e.siteCounts(true);
      await e.evaluateLogits(randomIds(11, 40, e.config.nVocab));
      const c = e.siteCounts(true);
      return c.kept.map((k, site) => k / c.seen[site]!);
    });
    for (const [site, kept] of denseSparse.entries()) assert.ok(kept < 0.75, `${arch}: dense site ${site} keeps ${kept} at sparsity ${SPARSITY}`);
    const min = await withEngine(flash, { threads: SWAP_THREADS_DEFAULT, dram: 1 << 30 }, async (e) => e.plan!.minimumBytes);
    const small = await withEngine(flash, { dram: min + 64 * 1024, sparsity: SPARSITY }, outputs);
    const all = await withEngine(flash, { dram: 1 << 30, sparsity: SPARSITY }, outputs);
    assert.ok(maxAbsDiff(all.logits, full.logits) > 0.01, `${arch}: sparsity ${SPARSITY} leaves the logits as they were`);
    for (const a of all.active) {
      for (const site of ["q", "o", "gate", "down"] as const) assert.ok(a[site]! < 0.75, `${arch}: ${site} keeps ${a[site]} at sparsity ${SPARSITY}`);
    }
    // (a) The budget changes what is read, never the numbers.
    assert.ok(small.read > all.read, `${arch}: the small budget read ${small.read} bytes, the large one ${all.read}: it should miss its cache`);
    assert.deepEqual(small.gens, all.gens);
    assert.equal(maxAbsDiff(small.logits, all.logits), 0, `${arch}: logits differ between budgets`);

    // (c) Resident weights + KV + scratch stay inside the budget; (d) below the minimum is refused.
    await withEngine(flash, { dram: min, sparsity: SPARSITY }, async (e) => {
      const { stats } = await greedy(e, randomIds(3, 30, e.config.nVocab), 12);
      const f = stats.flash!;
      const held = f.weightResidentBytesPeak + f.kvBytes + f.scratchBytes;
      assert.ok(held <= min, `${arch}: held ${held} > budget ${min}`);
    });
    await assert.rejects(
      Engine.load(flash, { contextLength: CTX, dram: min - 1 }),
      (e: unknown) => isActiveflowError(e) && e.code === "BUDGET_TOO_SMALL" && e.message.includes(`minimum of ${fmt(min)}`),
    );
  });
}
