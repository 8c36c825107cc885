// Issue 15's acceptance for the budget a user sees: a test-run of the demo (scripts/demo.mjs,
// all of it but its install and build steps, which `npm test` has done) shows the budgeted
// run's peak RSS below the dense run's by at least 25 % of the model file's bytes. The demo
// runs against a temporary cache holding a link to the cached SmolLM2 file (no download; its
// conversion and calibration table stay in the temporary cache); skipped when SmolLM2 is not
// cached, as the other SmolLM2 tests are. Each run's RSS is its own process's peak.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { JSON_SCHEMA } from "../src/cli/output.js";
import { SMOLLM2 } from "../src/fetch/smollm2.js";
import { REPO_ROOT } from "./helpers/repo.js";
import { findSmolLM2, linkSmolLM2Into } from "./helpers/smollm2.js";

// The acceptance bar: the saving, as a fraction of the model file's bytes.
const MIN_SAVING_OF_FILE = 0.25;

interface DemoRun {
  args: string[];
  rss_peak_bytes: number;
  runtime_floor_bytes: number;
}

test("the demo's budgeted run peaks at least 25 % of the model file's bytes below its dense run", async (t) => {
  const found = await findSmolLM2();
  if (found.path === undefined) {
    t.skip(found.reason);
    return;
  }
  const dir = await mkdtemp(join(tmpdir(), "af-demo-"));
  try {
    const model = await linkSmolLM2Into(dir, found.path);
    const r = spawnSync(process.execPath, [join(REPO_ROOT, "scripts", "demo.mjs"), "--skip-build", "--json"], {
      cwd: REPO_ROOT, env: { ...process.env, ACTIVEFLOW_CACHE: dir }, encoding: "utf8", timeout: 180_000,
    });
    assert.equal(r.status, 0, `demo failed:\n${r.stderr}`);
    const j = JSON.parse(r.stdout.trimEnd().split("\n").at(-1)!) as {
      schema: number; model_path: string; model_file_bytes: number; dense: DemoRun; budgeted: DemoRun; saving_bytes: number; saving_fraction_of_file: number;
    };
    assert.equal(j.schema, JSON_SCHEMA);
    assert.equal(j.model_path, model, "the demo fetched into the temporary cache");
    assert.equal(j.model_file_bytes, SMOLLM2.file.size);
    assert.deepEqual(j.dense.args, []);
    assert.ok(j.budgeted.args.includes("--dram"), `the budgeted run has a budget: ${j.budgeted.args.join(" ")}`);
    const saving = j.dense.rss_peak_bytes - j.budgeted.rss_peak_bytes;
    assert.equal(j.saving_bytes, saving);
    const MiB = 1024 * 1024;
    const summary = `dense ${(j.dense.rss_peak_bytes / MiB).toFixed(1)} MiB, budgeted (${j.budgeted.args.join(" ")}) ` +
      `${(j.budgeted.rss_peak_bytes / MiB).toFixed(1)} MiB: saving ${(saving / MiB).toFixed(1)} MiB = ` +
      `${((saving / j.model_file_bytes) * 100).toFixed(1)} % of the ${(j.model_file_bytes / MiB).toFixed(1)} MiB file ` +
      `(runtime floors ${(j.dense.runtime_floor_bytes / MiB).toFixed(1)} and ${(j.budgeted.runtime_floor_bytes / MiB).toFixed(1)} MiB)`;
    t.diagnostic(summary);
    assert.ok(saving >= MIN_SAVING_OF_FILE * j.model_file_bytes, `saving below ${MIN_SAVING_OF_FILE * 100} % of the file: ${summary}`);
    // What a user reads at the end of `npm run demo`.
    assert.match(r.stderr, /\npeak RSS: dense \d+\.\d MiB, --dram \S+ .*\d+\.\d MiB: \d+\.\d MiB less, \d+ % of the \d+\.\d MiB model file\n/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
