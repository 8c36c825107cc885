// Crash safety of calibrate (issue 14): kill -9 at random points of `activeflow calibrate` never
// leaves a torn table (the sidecar is absent or loads), the next run resumes or starts over and
// finishes; two calibrations of one model at once both finish with a table that loads.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GgmlType } from "../src/gguf/types.js";
import { calibrationPath, loadCalibration } from "../src/sparsity/store.js";
import { synthesizeModel } from "../src/synth/synth.js";
import { tempOwner } from "../src/tempFiles.js";
import { rng } from "./helpers/random.js";
import { BIN } from "./helpers/repo.js";

const TRIALS = 10;
const ARGS = ["--tokens", "64", "--method", "uniform"];
let dir = "";
let model = "";

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "af-crash-calibrate-"));
  model = join(dir, "small.gguf");
  await synthesizeModel("small", GgmlType.Q8_0, model, { seed: 4 });
});
after(() => rm(dir, { recursive: true, force: true }));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const run = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8", timeout: 300_000 });

function calibrateChild(): { exited: Promise<number | null>; kill: () => void; stderr: () => string } {
  const child = spawn(process.execPath, [BIN, "calibrate", model, ...ARGS], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  child.stderr!.on("data", (b: Buffer) => (err += b.toString()));
  return { exited: new Promise((r) => child.on("exit", (c) => r(c))), kill: () => child.kill("SIGKILL"), stderr: () => err };
}

// The table is absent or whole: it parses and holds the levels asked for.
async function assertTableWhole(what: string): Promise<void> {
  if (!existsSync(calibrationPath(model))) return;
  const t = await loadCalibration(model);
  assert.ok(t !== undefined && t.levels.includes(0.5), `${what}: the table does not load whole`);
}

test(`kill -9 at ${TRIALS} random points of calibrate: the table is absent or whole, and the next run finishes`, async (t) => {
  const t0 = performance.now();
  const ref = run(["calibrate", model, ...ARGS]);
  assert.equal(ref.status, 0, ref.stderr);
  const ms = performance.now() - t0;
  const random = rng(314);
  for (let i = 0; i < TRIALS; i++) {
    await rm(calibrationPath(model), { force: true });
    const c = calibrateChild();
    await sleep(random() * ms);
    c.kill();
    await c.exited;
    await assertTableWhole(`trial ${i}`);
  }
  const last = run(["calibrate", model, ...ARGS]);
  assert.equal(last.status, 0, last.stderr);
  await assertTableWhole("after the kills");
  assert.ok(existsSync(calibrationPath(model)));
  const leftovers = readdirSync(dir).filter((n) => tempOwner(n) !== undefined);
  assert.deepEqual(leftovers, [], "temporary files of killed runs are swept by the next one");
  t.diagnostic(`calibration ${ms.toFixed(0)} ms`);
});

test("two calibrations of one model at once both finish, and the table loads", async () => {
  await rm(calibrationPath(model), { force: true });
  const a = calibrateChild(), b = calibrateChild();
  const codes = await Promise.all([a.exited, b.exited]);
  assert.deepEqual(codes, [0, 0], `${a.stderr()} ${b.stderr()}`);
  await assertTableWhole("two at once");
  assert.ok(existsSync(calibrationPath(model)));
});
