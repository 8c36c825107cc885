// Crash safety of calibrate (issue 14): kill -9 at 20 random points of `activeflow calibrate`
// never leaves a torn table. calibrate writes three kinds of target, all checked after every kill:
// a GGUF's sidecar (<model>.calibration.json: absent or loads), its cached conversions' headers
// (activeflow.thresholds.* patched in place: the file verifies with `activeflow verify`, its table
// absent or whole) and, when it calibrates a flash file itself, that file's header (the same).
// The next run finishes and sweeps the killed runs' temporary files; two calibrations of one model
// at once both finish with tables that load and files that verify.
// Slow (about a minute): each trial is a node process that loads the model.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { copyFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GgmlType } from "../src/gguf/types.js";
import { calibrationPath, loadCalibration } from "../src/sparsity/store.js";
import { synthesizeModel } from "../src/synth/synth.js";
import { tempOwner } from "../src/tempFiles.js";
import { rng } from "./helpers/random.js";
import { BIN } from "./helpers/repo.js";

const TRIALS = 20;
const ARGS = ["--tokens", "64", "--method", "uniform"];
let dir = "";
let model = ""; // a plain GGUF: sidecar + its cached conversion
let flash = ""; // a flash file calibrated itself: its own header
let pristineFlash = ""; // `flash` before any calibration, restored before each of its trials
let cached = ""; // model's conversion in the cache
let env: NodeJS.ProcessEnv;

const run = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { env, encoding: "utf8", timeout: 300_000 });

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "af-crash-calibrate-"));
  env = { ...process.env, ACTIVEFLOW_CACHE: join(dir, "cache") };
  model = join(dir, "small.gguf");
  await synthesizeModel("small", GgmlType.Q8_0, model, { seed: 4 });
  // A first --dram run puts the model's conversion in the cache, which calibrate then updates.
  const r = run(["run", model, "--dram", "64MB", "-p", "hello", "-n", "1", "--greedy"]);
  assert.equal(r.status, 0, r.stderr);
  const flashDir = join(dir, "cache", "flash");
  const entries = readdirSync(flashDir).filter((n) => n.endsWith(".af.gguf"));
  assert.equal(entries.length, 1, entries.join(", "));
  cached = join(flashDir, entries[0]!);
  pristineFlash = join(dir, "pristine.af.gguf");
  const c = run(["convert", model, pristineFlash]);
  assert.equal(c.status, 0, c.stderr);
  flash = join(dir, "small.af.gguf");
});
after(() => rm(dir, { recursive: true, force: true }));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function calibrateChild(target: string): { exited: Promise<number | null>; kill: () => void; stderr: () => string } {
  const child = spawn(process.execPath, [BIN, "calibrate", target, ...ARGS], { env, stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  child.stderr!.on("data", (b: Buffer) => (err += b.toString()));
  return { exited: new Promise((r) => child.on("exit", (c) => r(c))), kill: () => child.kill("SIGKILL"), stderr: () => err };
}

// A table, where there is one, parses and holds the levels asked for.
async function assertTableWhole(path: string, what: string): Promise<void> {
  const t = await loadCalibration(path);
  assert.ok(t === undefined || t.levels.includes(0.5), `${what}: ${path}'s table does not load whole`);
}

// `activeflow verify` (header checksum, then every page against its CRC-32C) passes.
function assertVerifies(path: string, what: string): void {
  const r = spawnSync(process.execPath, [BIN, "verify", path], { env, encoding: "utf8", timeout: 120_000 });
  assert.equal(r.status, 0, `${what}: ${path} does not verify: ${r.stderr}`);
}

async function assertTargetsWhole(what: string): Promise<void> {
  await assertTableWhole(model, what); // the sidecar
  for (const f of [cached, ...(existsSync(flash) ? [flash] : [])]) {
    assertVerifies(f, what);
    await assertTableWhole(f, what);
  }
}

// Temporary files of any writer (sidecar .tmp-<pid>, header .meta-<pid>.tmp, checkpoint) left in `d`.
const leftovers = (d: string) => readdirSync(d).filter((n) => tempOwner(n) !== undefined);

test(`kill -9 at ${TRIALS} random points of calibrate (a GGUF with a cached conversion, a flash file): every target absent or whole, and the next run finishes`, async (t) => {
  const t0 = performance.now();
  await copyFile(pristineFlash, flash);
  const ref = run(["calibrate", flash, ...ARGS]);
  assert.equal(ref.status, 0, ref.stderr);
  const ms = performance.now() - t0;
  const random = rng(314);
  let leftBehind = 0; // kills inside a write: a temporary file is left for the next run to sweep
  for (let i = 0; i < TRIALS; i++) {
    // Alternately the GGUF (sidecar and cached conversion) and the flash file, each from no table
    // (the conversion keeps its last one: a kill must leave it whole, old or new).
    const target = i % 2 === 0 ? model : flash;
    await rm(calibrationPath(model), { force: true });
    await rm(`${target}.calibrate-checkpoint.json`, { force: true });
    if (target === flash) await copyFile(pristineFlash, flash);
    const c = calibrateChild(target);
    // Half the kills anywhere, half in the last quarter, where the tables are written.
    await sleep(i % 4 < 2 ? random() * ms : (0.75 + 0.3 * random()) * ms);
    c.kill();
    await c.exited;
    if (leftovers(dir).length + leftovers(join(dir, "cache", "flash")).length > 0) leftBehind++;
    await assertTargetsWhole(`trial ${i} (${target === model ? "GGUF" : "flash file"})`);
  }
  // Random points seldom land inside a write (a few ms of a run of seconds), so the files such a
  // kill leaves are also planted, as a dead process names them: the next run sweeps them.
  const dead = spawnSync(process.execPath, ["-e", ""]).pid!;
  const planted = [`${calibrationPath(model)}.tmp-${dead}`, `${model}.calibrate-checkpoint.json.tmp-${dead}`, `${flash}.meta-${dead}.tmp`];
  for (const p of planted) await writeFile(p, "torn");
  for (const target of [model, flash]) {
    const last = run(["calibrate", target, ...ARGS]);
    assert.equal(last.status, 0, last.stderr);
  }
  await assertTargetsWhole("after the kills");
  for (const f of [model, cached, flash]) assert.ok((await loadCalibration(f)) !== undefined, `${f} has a table after an uninterrupted run`);
  assert.deepEqual([...leftovers(dir), ...leftovers(join(dir, "cache", "flash"))], [], "temporary files of killed runs are swept by the next one");
  t.diagnostic(`calibration of the flash file ${ms.toFixed(0)} ms (with the node start); ${leftBehind} of ${TRIALS} kills left temporary files`);
});

test("two calibrations of one model at once (a GGUF and its cached conversion, a flash file) both finish: tables load, files verify", async () => {
  await rm(calibrationPath(model), { force: true });
  await copyFile(pristineFlash, flash);
  for (const target of [model, flash]) {
    const a = calibrateChild(target), b = calibrateChild(target);
    const codes = await Promise.all([a.exited, b.exited]);
    assert.deepEqual(codes, [0, 0], `${target}: ${a.stderr()} ${b.stderr()}`);
  }
  await assertTargetsWhole("two at once");
  for (const f of [model, cached, flash]) assert.ok((await loadCalibration(f)) !== undefined, `${f} has a table`);
  assert.deepEqual([...leftovers(dir), ...leftovers(join(dir, "cache", "flash"))], [], "no temporary files left");
});
