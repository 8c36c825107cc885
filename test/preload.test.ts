// Cross-layer preloading on a small synthetic model: whatever the prediction reads ahead (on
// or off, any margin, any group size), compute sums the same columns in the same order, so
// tokens and logits are identical; the predictor's counters mean what they say.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Engine } from "../src/index.js";
import type { GenerationStats, LoadOptions } from "../src/engine/types.js";
import { convertToFlash } from "../src/flash/convert.js";
import { GgmlType } from "../src/gguf/types.js";
import { calibrate } from "../src/sparsity/calibrate.js";
import { saveCalibration } from "../src/sparsity/store.js";
import { synthesizeModel } from "../src/synth/synth.js";
import { defaultBackend } from "../src/backends/default.js";

const CTX = 64;
const SPARSITY = 0.5;
let dir = "";
const flash: Record<number, string> = {}; // group size -> converted file

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "af-preload-"));
  const gguf = join(dir, "small-f32.gguf");
  // F32 "small" shape: 6 MiB of extents, so a budget a few MiB over the minimum evicts.
  await synthesizeModel("small", GgmlType.F32, gguf, { seed: 5 });
  for (const g of [1, 2]) {
    flash[g] = join(dir, `small.g${g}.af.gguf`);
    await convertToFlash(defaultBackend(), gguf, flash[g]!, { groupSize: g });
    const e = await Engine.load(flash[g]!, { contextLength: CTX });
    try {
      await saveCalibration(flash[g]!, await calibrate(e, { text: "A small model reads its columns from flash. ".repeat(12) }));
    } finally {
      await e.dispose();
    }
  }
});

after(async () => {
  if (dir !== "") await rm(dir, { recursive: true, force: true });
});

async function run(path: string, options: LoadOptions): Promise<{ ids: number[][]; logits: Float32Array[]; stats: GenerationStats[] }> {
  const e = await Engine.load(path, { contextLength: CTX, sparsity: SPARSITY, ...options });
  assert.ok(options.sparsity === undefined || e.sparsity === e.tuning?.sparsity || e.sparsity === options.sparsity);
  try {
    const ids: number[][] = [];
    const stats: GenerationStats[] = [];
    for (const prompt of [[1, 17, 300, 42, 99, 7], [9], [256, 3, 3, 3, 511, 128]]) {
      const gen = e.generate(prompt, { greedy: true, maxTokens: 10, stopAtEos: false });
      const out: number[] = [];
      for (;;) {
        const r = await gen.next();
        if (r.done === true) {
          stats.push(r.value);
          break;
        }
        out.push(r.value.id);
      }
      ids.push(out);
    }
    const logits = (await e.evaluateLogits([5, 9, 200, 201, 7, 7, 300, 12])).map((l) => Float32Array.from(l));
    return { ids, logits, stats };
  } finally {
    await e.dispose();
  }
}

async function minimum(path: string): Promise<number> {
  const e = await Engine.load(path, { contextLength: CTX });
  try {
    return e.plan!.minimumBytes;
  } finally {
    await e.dispose();
  }
}

test("preloading on or off, any margin or group size: identical tokens and bit-identical logits", async () => {
  // Budgets a little over each file's minimum, so the cache evicts and preloads serve channels
  // (groups of one layer prefetch per site and need less buffer room than groups of two).
  const budget1 = (await minimum(flash[1]!)) + (1 << 20);
  const budget2 = (await minimum(flash[2]!)) + (3 << 20);
  const base = await run(flash[1]!, { dram: budget1 });
  let withdrawn = 0;
  for (const [g, options] of [
    [1, { dram: budget1, preload: true }],
    [1, { dram: budget1, preload: true, predictMargin: 0.3 }],
    [1, { dram: budget1, readAhead: true }],
    [2, { dram: budget2, preload: true }],
    [2, { dram: budget2, preload: false }],
  ] as const) {
    const r = await run(flash[g]!, options);
    assert.deepEqual(r.ids, base.ids, `group size ${g}, ${JSON.stringify(options)}`);
    for (let i = 0; i < r.logits.length; i++) assert.deepEqual(r.logits[i], base.logits[i], `logits row ${i}`);
    const ps = r.stats.map((s) => s.flash!.preload!);
    const preloaded = ps.reduce((n, p) => n + p.preloadBytesRead, 0);
    if ("readAhead" in options) {
      assert.ok(ps.every((p) => p.enabled && p.readAhead), "read-ahead has its buffers");
      assert.ok(preloaded > 0 && ps.some((p) => p.activeFromPreload > 0), `read-ahead served active channels: ${JSON.stringify(ps)}`);
      // A site's read-ahead is many reads, the next visit comes microseconds later: some are
      // still unissued there and withdrawn, and the results above stayed identical.
      withdrawn += ps.reduce((n, p) => n + p.readsWithdrawn, 0);
    } else if (options.preload !== true) {
      assert.ok(ps.every((p) => !p.enabled));
      assert.equal(preloaded, 0);
    } else {
      assert.ok(ps[0]!.enabled && ps[0]!.bufferBytes > 0, "the plan gave the preload buffers memory");
      assert.ok(preloaded > 0 && ps.some((p) => p.activeFromPreload > 0), `preloads served active channels: ${JSON.stringify(ps)}`);
    }
    for (const s of r.stats) {
      const f = s.flash!;
      assert.ok(f.weightResidentBytesPeak + f.kvBytes + f.scratchBytes <= f.dramBudgetBytes, "inside the budget");
    }
  }
  console.log(`read-ahead reads withdrawn at their visit: ${withdrawn}`);
});

test("prediction counters: margin 0 predicts (nearly) every active channel, margin 1 predicts fewer", async () => {
  const dram = 1 << 30;
  const wide = await run(flash[1]!, { dram, predictMargin: 0 });
  const tight = await run(flash[1]!, { dram, predictMargin: 1 });
  const at = (r: typeof wide, site: string) => r.stats.at(-1)!.flash!.preload!.prediction[site]!.find((d) => d.distance === 1)!;
  for (const site of ["attn_in", "ffn_in"]) {
    // Only a channel whose residual or norm weight is exactly 0 can be missed at margin 0.
    assert.ok(at(wide, site).recall! >= 0.99, `${site} recall with margin 0: ${at(wide, site).recall}`);
    assert.ok(at(tight, site).recall! < 1 && at(tight, site).recall! > 0, `${site} recall at margin 1: ${at(tight, site).recall}`);
    assert.ok(at(tight, site).precision! > at(wide, site).precision!, `${site}: a higher margin is more precise`);
  }
  // o and down are predicted by the previous token's set: counted from the second decode token.
  for (const site of ["attn_out", "ffn_out"]) {
    const c = at(tight, site);
    assert.ok(c.recall! > 0 && c.recall! <= 1 && c.precision! > 0, `${site}: ${JSON.stringify(c)}`);
  }
});

test('sparsity "auto": the tuner picks a calibrated level from the budget, and the run equals one at that level', async () => {
  const budget = (await minimum(flash[1]!)) + (1 << 20);
  const auto = await Engine.load(flash[1]!, { contextLength: CTX, dram: budget, sparsity: "auto" });
  let chosen: number;
  try {
    const t = auto.tuning!;
    assert.ok(t, "the engine reports its tuning");
    chosen = t.sparsity;
    assert.equal(auto.sparsity, chosen);
    assert.ok(chosen > 0 && chosen <= 0.5, `a tight budget asks for sparsity, capped at 0.5 by default: ${chosen}`);
    assert.ok(t.predictedTokensPerSecond > 0 && t.reason.length > 0);
  } finally {
    await auto.dispose();
  }
  const a = await run(flash[1]!, { dram: budget, sparsity: "auto" });
  const b = await run(flash[1]!, { dram: budget, sparsity: chosen });
  assert.deepEqual(a.ids, b.ids);
});
