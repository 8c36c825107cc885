// Distillation: the CLI refuses to start without a calibration table or on the evaluation text;
// a tiny 2-layer Q4_0 model distils end to end (held-out KL falls, the written GGUF keeps every
// key and tensor, loads in the engine and generates); and on SmolLM2 the PyTorch model matches
// the engine's logits dense (parity tolerance) and its masks keep the engine's fractions.
// Needs the Python environment (python/requirements.txt in <cache>/distill-venv or
// $ACTIVEFLOW_DISTILL_VENV); without it the torch tests skip, unless ACTIVEFLOW_REQUIRE_TORCH=1
// (CI sets it) turns the skip into a failure.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { main } from "../src/cli/main.js";
import { captureContext } from "./helpers/cli.js";
import { distilledPath } from "../src/cli/commands/distill.js";
import { runPythonModule, venvDir, venvPython, venvReady } from "../src/distill/python.js";
import { Engine } from "../src/index.js";
import { readGguf } from "../src/gguf/reader.js";
import { GgmlType } from "../src/gguf/types.js";
import { calibrate, CALIBRATION_PROMPTS } from "../src/sparsity/calibrate.js";
import { loadCalibration, saveCalibration } from "../src/sparsity/store.js";
import { thresholdsFor } from "../src/sparsity/thresholds.js";
import { synthesizeModel } from "../src/synth/synth.js";

const TORCH = venvReady();
const TORCH_SKIP = TORCH
  ? false
  : process.env.ACTIVEFLOW_REQUIRE_TORCH === "1"
    ? false // run, and fail loudly below
    : `no PyTorch environment at ${venvDir()} (run \`activeflow distill\` once, or pip install -r python/requirements.txt there)`;
const SMOLLM2 = join(process.env.ACTIVEFLOW_CACHE ?? join(homedir(), ".cache", "activeflow"), "models", "SmolLM2-135M-Instruct.Q4_1.gguf");

let dir = "";
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "af-distill-"));
});
after(async () => {
  if (dir !== "") await rm(dir, { recursive: true, force: true });
});

const context = (env: NodeJS.ProcessEnv) => captureContext({ env });

test("distill names its output beside the model with the sparsity in the name", () => {
  assert.equal(distilledPath("/m/SmolLM2-135M-Instruct.Q4_1.gguf", 0.5), "/m/SmolLM2-135M-Instruct.Q4_1.distilled-s0.5.gguf");
  assert.equal(distilledPath("/m/x.GGUF", 0.7), "/m/x.distilled-s0.7.gguf");
});

test("distill without a calibration table tells the user to calibrate, and refuses the evaluation text", async () => {
  const model = join(dir, "uncalibrated.gguf");
  await synthesizeModel("tiny", GgmlType.Q4_0, model, { seed: 2 });
  const c = context({ ...process.env, ACTIVEFLOW_CACHE: dir });
  assert.equal(await main(["distill", model, "--sparsity", "0.5"], c.ctx), 1);
  assert.match(c.err(), /run `activeflow calibrate .*uncalibrated\.gguf` first/);
  const d = context({ ...process.env, ACTIVEFLOW_CACHE: dir });
  assert.equal(await main(["distill", model, "--sparsity", "0.5", "--text", "../shared/data/wikitext-2-raw/wiki.test.raw"], d.ctx), 1);
  assert.match(d.err(), /evaluation text/);
  const e = context({ ...process.env, ACTIVEFLOW_CACHE: dir });
  assert.equal(await main(["distill", model], e.ctx), 2);
  assert.match(e.err(), /--sparsity/);
});

test("a tiny 2-layer Q4_0 model distils end to end: held-out KL falls, the GGUF keeps its layout, loads and generates", { skip: TORCH_SKIP }, async () => {
  assert.ok(TORCH, `ACTIVEFLOW_REQUIRE_TORCH=1 but ${venvPython()} does not find torch, gguf, numpy and tqdm`);
  const model = join(dir, "tiny.gguf");
  await synthesizeModel("tiny", GgmlType.Q4_0, model, { seed: 5 });
  const e = await Engine.load(model, { contextLength: 256 });
  try {
    await saveCalibration(model, await calibrate(e, { tokensPerPrompt: 32 }));
  } finally {
    await e.dispose();
  }
  const out = join(dir, "tiny.distilled.gguf");
  const c = context({ ...process.env, ACTIVEFLOW_CACHE: dir, ACTIVEFLOW_DISTILL_VENV: venvDir() });
  const code = await main(
    ["distill", model, "--sparsity", "0.5", "--steps", "30", "--lr", "3e-3", "--tokens", "2560", "--threads", "1", "--out", out, "--json"],
    c.ctx,
  );
  assert.equal(code, 0, c.err());
  const r = JSON.parse(c.out().trim().split("\n").pop()!) as Record<string, number | string>;
  assert.equal(r.steps, 30);
  assert.equal(r.weight_type, "Q4_0");
  assert.ok((r.val_kl_after as number) < 0.9 * (r.val_kl_before as number), `held-out KL ${r.val_kl_before} -> ${r.val_kl_after}`);
  // What the file stores is exactly what the student was trained with.
  assert.equal(r.requant_max_abs_diff, 0);
  // Same metadata and tensor table; the trained tensors changed.
  const [a, b] = [await readGguf(model), await readGguf(out)];
  assert.deepEqual([...b.metadata.keys()], [...a.metadata.keys()]);
  assert.deepEqual(b.tensors.map((t) => [t.name, t.type, t.dims]), a.tensors.map((t) => [t.name, t.type, t.dims]));
  assert.notDeepEqual(await readFile(out), await readFile(model));
  // The engine loads it and generates.
  const d = await Engine.load(out, { contextLength: 64 });
  try {
    const gen = d.generate("tok", { maxTokens: 8, temperature: 0, stopAtEos: false });
    let n = 0;
    let s = await gen.next();
    while (!s.done) {
      n++;
      s = await gen.next();
    }
    assert.equal(n, 8);
    const logits = await d.evaluateLogits([1, 5, 9, 12]);
    assert.ok(logits.every((l) => l.every(Number.isFinite)));
  } finally {
    await d.dispose();
  }
  // A second run reuses the cached training tokens.
  assert.match(c.err(), /training tokens: .*tokens\.i32/);
});

const PARITY_SKIP = TORCH_SKIP !== false ? TORCH_SKIP : !existsSync(SMOLLM2) ? `SmolLM2 is not cached at ${SMOLLM2} (activeflow fetch smollm2)` : false;

test("SmolLM2: PyTorch logits match the engine dense (top-1 >= 95 %, KL <= 0.01); at 0.5 the masks keep the engine's fractions", { skip: PARITY_SKIP }, async () => {
  const table = await loadCalibration(SMOLLM2);
  const e = await Engine.load(SMOLLM2, { threads: 2 });
  const ids: number[] = [];
  const files: Record<string, { kept: number[]; kl_dense_sparse?: number }> = {};
  try {
    // The calibration prompts' own continuations (never the evaluation text).
    for (const [i, p] of CALIBRATION_PROMPTS.slice(0, 5).entries()) {
      const pids = e.tokenizer.encode(p, { addSpecial: true });
      const g = e.generate(pids, { maxTokens: 64, temperature: 0.8, topK: 40, seed: 99 + i, stopAtEos: false });
      ids.push(...pids);
      let r = await g.next();
      while (!r.done) {
        ids.push(r.value.id);
        r = await g.next();
      }
    }
    await writeFile(join(dir, "p.ids"), Int32Array.from(ids));
    const levels = table ? [0, 0.5] : [0];
    const dense: Float32Array[] = [];
    for (const s of levels) {
      e.setThresholds(s > 0 ? thresholdsFor(table!, s) : null);
      e.siteCounts(true);
      const L = await e.evaluateLogits(ids);
      const c = e.siteCounts(true);
      const flat = new Float32Array(L.length * e.config.nVocab);
      L.forEach((l, i) => flat.set(l, i * e.config.nVocab));
      await writeFile(join(dir, `p${s}.logits`), flat);
      if (s === 0) dense.push(...L.map((l) => l.slice()));
      files[String(s)] = { kept: c.kept.map((k, i) => k / c.seen[i]!) };
      if (s > 0) files[String(s)]!.kl_dense_sparse = meanKl(dense, L);
    }
  } finally {
    await e.dispose();
  }
  for (const s of Object.keys(files)) {
    const args = ["--model", SMOLLM2, "--ids", join(dir, "p.ids"), "--logits", join(dir, `p${s}.logits`), "--sparsity", s];
    const r = await runPythonModule(venvPython(), "activeflow_distill.parity", args, () => {});
    assert.equal(r.code, 0, r.stdout);
    const p = JSON.parse(r.stdout.trim().split("\n").pop()!) as { top1_agreement: number; kl_mean: number; kept_fraction: number[] };
    console.log(`# parity at sparsity ${s} on ${ids.length} tokens: ${JSON.stringify({ ...p, engine: files[s] })}`);
    if (s === "0") {
      // The engine rounds Q8_1 activation scales to f16 as llama.cpp does, so near-ties in
      // PyTorch's float logits go llama.cpp's way (0.978 before that rounding, 0.955 after; KL 0.0028 -> 0.0029).
      assert.ok(p.top1_agreement >= 0.95, `top-1 agreement ${p.top1_agreement}`);
      assert.ok(p.kl_mean <= 0.01, `KL ${p.kl_mean}`);
    } else {
      // Mask decisions flip where |x| sits at the threshold, and a flip upstream of SmolLM2's
      // massive-activation channels moves everything after it, so logits agree only loosely:
      // the two sparse models are still much closer to each other than to the dense model.
      for (let i = 0; i < 4; i++) {
        assert.ok(Math.abs(p.kept_fraction[i]! - files[s]!.kept[i]!) < 0.01, `site ${i}: kept ${p.kept_fraction[i]} vs engine ${files[s]!.kept[i]}`);
      }
      assert.ok(p.kl_mean < 0.75 * files[s]!.kl_dense_sparse!, `KL(engine || torch) ${p.kl_mean} vs KL(dense || sparse) ${files[s]!.kl_dense_sparse}`);
    }
  }
});

function meanKl(p: Float32Array[], q: Float32Array[]): number {
  let sum = 0;
  for (let t = 0; t < p.length; t++) {
    const lp = logSoftmax(p[t]!), lq = logSoftmax(q[t]!);
    let kl = 0;
    for (let i = 0; i < lp.length; i++) kl += Math.exp(lp[i]!) * (lp[i]! - lq[i]!);
    sum += kl;
  }
  return sum / p.length;
}

function logSoftmax(x: Float32Array): Float64Array {
  let m = -Infinity;
  for (const v of x) m = Math.max(m, v);
  let s = 0;
  for (const v of x) s += Math.exp(v - m);
  const l = Math.log(s) + m;
  return Float64Array.from(x, (v) => v - l);
}
