// Sparsity out of the box (issue 15, item 2): `fetch smollm2` installs the calibration table
// shipped in data/calibration/, so `run smollm2 --sparsity 0.5 --dram 50%` works without a
// calibrate step. Runs in a temporary cache holding a link to the cached model (no download);
// skipped when SmolLM2 is not cached, as the other SmolLM2 tests are.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { shippedCalibrationFile } from "../src/fetch/shippedCalibration.js";
import { SMOLLM2 } from "../src/fetch/smollm2.js";
import { calibrationPath } from "../src/sparsity/store.js";
import { findSmolLM2, linkSmolLM2Into } from "./helpers/smollm2.js";
import { runCli } from "./helpers/cli.js";

const cli = (argv: string[], env: NodeJS.ProcessEnv) => runCli(argv, { env });

test("the shipped SmolLM2 table records how it was made and was not calibrated on the evaluation text", async () => {
  const file = shippedCalibrationFile(SMOLLM2.fileName);
  assert.ok(file !== undefined, "data/calibration holds the SmolLM2 table");
  const j = JSON.parse(await readFile(file, "utf8")) as { method: string; source: string; calibrationTokens: number; nLayer: number; levels: number[]; provenance: { command: string; model_sha256: string } };
  assert.equal(j.nLayer, 30);
  assert.ok(j.levels.includes(0.5));
  assert.ok(["uniform", "matched", "greedy"].includes(j.method));
  assert.match(j.source, /self-generated/);
  assert.ok(j.calibrationTokens > 0);
  assert.match(j.provenance.command, /^activeflow calibrate /);
  assert.doesNotMatch(JSON.stringify(j.provenance), /wiki\.test\.raw/);
  assert.equal(j.provenance.model_sha256, SMOLLM2.file.sha256);
});

test("fetch smollm2 installs the shipped table; run smollm2 --sparsity 0.5 --dram 50% works without calibrate", async (t) => {
  const found = await findSmolLM2();
  if (found.path === undefined) {
    t.skip(found.reason);
    return;
  }
  const dir = await mkdtemp(join(tmpdir(), "af-smollm2-sparse-"));
  const model = await linkSmolLM2Into(dir, found.path);
  const saved = process.env.ACTIVEFLOW_CACHE;
  // The flash cache and machine profile follow process.env; fetch follows ctx.env.
  process.env.ACTIVEFLOW_CACHE = dir;
  const env = { ...process.env, ACTIVEFLOW_CACHE: dir };
  try {
    assert.equal(model, join(dir, "models", SMOLLM2.fileName));
    assert.equal(existsSync(calibrationPath(model)), false);

    const f = await cli(["fetch", "smollm2"], env);
    assert.equal(f.code, 0, f.err);
    assert.equal(f.out.trim().split("\n").at(-1), model);
    assert.ok(existsSync(calibrationPath(model)), "fetch installed the table beside the model");
    assert.match(f.err, /installed the shipped calibration table/);

    const r = await cli(["run", "smollm2", "--sparsity", "0.5", "--dram", "50%", "-p", "The capital of France is", "-n", "8", "--greedy", "--json"], env);
    assert.equal(r.code, 0, r.err);
    const rec = JSON.parse(r.out.trim().split("\n").at(-1)!) as { sparsity: number; generated_tokens: number; dram_budget_bytes: number; active_fraction: { gate: number } };
    assert.equal(rec.sparsity, 0.5);
    assert.ok(rec.generated_tokens > 0);
    assert.ok(rec.dram_budget_bytes > 0);
    assert.ok(rec.active_fraction.gate < 0.8, `sparse: gate/up keep ${rec.active_fraction.gate}`);

    // A table the user made stays: fetch does not overwrite it.
    const own = await readFile(calibrationPath(model), "utf8");
    const again = await cli(["fetch", "smollm2"], env);
    assert.equal(again.code, 0, again.err);
    assert.doesNotMatch(again.err, /installed the shipped calibration table/);
    assert.equal(await readFile(calibrationPath(model), "utf8"), own);
  } finally {
    if (saved === undefined) delete process.env.ACTIVEFLOW_CACHE;
    else process.env.ACTIVEFLOW_CACHE = saved;
    await rm(dir, { recursive: true, force: true });
  }
});
