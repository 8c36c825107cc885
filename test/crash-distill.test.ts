// Crash safety of distill (issue 14): kill -9 at random points of `activeflow distill` (the whole
// process group, the node process alone, or the Python trainer alone) never leaves a torn model
// or checkpoint: the output is absent or a GGUF with the source's layout, the checkpoint absent
// or loadable, the next run resumes from it and finishes, the killed runs' temporary files are
// swept, and a trainer whose parent was killed stops by itself instead of writing the output later;
// two distills of one model at once both finish with a whole output.
// Needs the distillation venv, as test/distill.test.ts.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { venvDir, venvPython, venvReady } from "../src/distill/python.js";
import { Engine } from "../src/index.js";
import { readGguf } from "../src/gguf/reader.js";
import { GgmlType } from "../src/gguf/types.js";
import { calibrate } from "../src/sparsity/calibrate.js";
import { saveCalibration } from "../src/sparsity/store.js";
import { synthesizeModel } from "../src/synth/synth.js";
import { rng } from "./helpers/random.js";
import { BIN, REPO_ROOT } from "./helpers/repo.js";

const TRIALS = 20;
const TORCH = venvReady();
const SKIP = TORCH || process.env.ACTIVEFLOW_REQUIRE_TORCH === "1" ? false : `no PyTorch environment at ${venvDir()} (see test/distill.test.ts)`;

let dir = "";
let model = "";
let out = "";
let env: NodeJS.ProcessEnv;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "af-crash-distill-"));
  if (SKIP !== false) return;
  model = join(dir, "tiny.gguf");
  out = join(dir, "out", "tiny.distilled.gguf");
  await mkdir(join(dir, "out"));
  await synthesizeModel("tiny", GgmlType.Q4_0, model, { seed: 5 });
  const e = await Engine.load(model, { contextLength: 256 });
  try {
    await saveCalibration(model, await calibrate(e, { tokensPerPrompt: 32 }));
  } finally {
    await e.dispose();
  }
  env = { ...process.env, ACTIVEFLOW_CACHE: join(dir, "cache"), ACTIVEFLOW_DISTILL_VENV: venvDir() };
});
after(() => (dir !== "" ? rm(dir, { recursive: true, force: true }) : undefined));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ARGS = () => ["distill", model, "--sparsity", "0.5", "--steps", "30", "--tokens", "2560", "--threads", "1", "--out", out];

// Members of process group `pgid` (the distill run and its Python children).
function groupPids(pgid: number): number[] {
  const r = spawnSync("ps", ["-o", "pid=", "-g", String(pgid)], { encoding: "utf8" });
  return r.stdout.split("\n").map((s) => Number(s.trim())).filter((n) => n > 0);
}

function trainerPid(pgid: number): number | undefined {
  const r = spawnSync("ps", ["-o", "pid=,args=", "-g", String(pgid)], { encoding: "utf8" });
  const line = r.stdout.split("\n").find((l) => l.includes("-m activeflow_distill"));
  return line === undefined ? undefined : Number(line.trim().split(/\s+/)[0]);
}

interface Run {
  pid: number;
  exited: Promise<number | null>;
  stderr: () => string;
  // When the trainer logged its start (model loaded, training begins), or undefined if it exited first.
  training: Promise<number | undefined>;
}

function distillChild(resume: boolean): Run {
  // Its own process group, so a test can kill the run with every child it started.
  const child = spawn(process.execPath, [BIN, ...ARGS(), ...(resume ? ["--resume"] : [])], { env, detached: true, stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  let onTraining: (t: number | undefined) => void = () => {};
  const training = new Promise<number | undefined>((r) => (onTraining = r));
  child.stderr!.on("data", (b: Buffer) => {
    err += b.toString();
    if (/^distilling /m.test(err)) onTraining(performance.now());
  });
  const exited = new Promise<number | null>((r) => child.on("exit", (c) => {
    onTraining(undefined);
    r(c);
  }));
  return { pid: child.pid!, exited, stderr: () => err, training };
}

// The output is absent or a whole GGUF with the source's tensors, types, dims and size.
async function assertOutputWhole(what: string): Promise<void> {
  if (!existsSync(out)) return;
  assert.equal(statSync(out).size, statSync(model).size, `${what}: ${out} has another size than its source`);
  const [a, b] = [await readGguf(model), await readGguf(out)];
  assert.deepEqual(b.tensors.map((t) => [t.name, t.type, t.dims, t.offset]), a.tensors.map((t) => [t.name, t.type, t.dims, t.offset]), what);
}

test(`kill -9 at ${TRIALS} random points of distill: output and checkpoint absent or whole, resumable, nothing left over`, { skip: SKIP }, async (t) => {
  assert.ok(TORCH, `ACTIVEFLOW_REQUIRE_TORCH=1 but ${venvPython()} does not find torch, gguf, numpy and tqdm`);
  const ckpt = `${out}.ckpt`;
  const t0 = performance.now();
  const ref = distillChild(false);
  const trainingAt = await ref.training;
  assert.equal(await ref.exited, 0, ref.stderr());
  assert.ok(trainingAt !== undefined, ref.stderr());
  const total = performance.now() - t0, trainMs = performance.now() - trainingAt;
  await assertOutputWhole("reference");

  const saved = join(dir, "checkpoints");
  await mkdir(saved);
  const random = rng(1404);
  const modes = { group: 0, node: 0, trainer: 0 };
  let resumed = 0;
  for (let i = 0; i < TRIALS; i++) {
    await rm(out, { force: true });
    if (i % 5 === 0) await rm(join(dir, "cache", "distill"), { recursive: true, force: true }); // the token cache is written again
    const resume = i % 2 === 1 && existsSync(ckpt);
    if (resume) resumed++;
    else await rm(ckpt, { force: true });
    const run = distillChild(resume);
    // Half the kills anywhere, half once the trainer runs (checkpoints and the output are written).
    if (i % 2 === 0) await sleep(random() * 0.9 * total);
    else if ((await run.training) !== undefined) await sleep(random() * 0.9 * trainMs);
    const mode = (["group", "node", "trainer"] as const)[i % 3]!;
    let target: number | undefined = mode === "group" ? -run.pid : run.pid;
    if (mode === "trainer") {
      while ((target = trainerPid(run.pid)) === undefined && groupPids(run.pid).length > 0) await sleep(20);
    }
    try {
      if (target !== undefined) process.kill(target, "SIGKILL");
      if (target !== undefined) modes[mode]++;
    } catch {
      // it had finished already
    }
    await run.exited;
    // Nothing of the run outlives it for long: a trainer whose parent died stops by itself.
    const deadline = performance.now() + 30_000;
    while (groupPids(run.pid).length > 0 && performance.now() < deadline) await sleep(50);
    assert.deepEqual(groupPids(run.pid), [], `trial ${i} (${mode}): processes of the killed run are still alive`);
    await assertOutputWhole(`trial ${i} (${mode})`);
    if (existsSync(ckpt)) await copyFile(ckpt, join(saved, `trial-${i}.ckpt`));
  }
  t.diagnostic(`kills: ${JSON.stringify(modes)}, ${resumed} runs resumed a killed run's checkpoint (run ${total.toFixed(0)} ms, training ${trainMs.toFixed(0)} ms)`);

  // Every checkpoint a killed run left loads.
  const names = readdirSync(saved);
  const load = spawnSync(venvPython(), ["-c", "import sys, torch\nfor p in sys.argv[1:]: torch.load(p, weights_only=False)", ...names.map((n) => join(saved, n))], { encoding: "utf8" });
  assert.equal(load.status, 0, `${names.length} checkpoints: ${load.stderr}`);

  const last = distillChild(existsSync(ckpt));
  assert.equal(await last.exited, 0, last.stderr());
  await assertOutputWhole("after the kills");
  assert.ok(existsSync(out));
  assert.deepEqual(readdirSync(join(dir, "out")).sort(), ["tiny.distilled.gguf", "tiny.distilled.gguf.ckpt", "tiny.distilled.gguf.curves.json"], "the killed runs' temporary files are swept");
  assert.deepEqual(readdirSync(join(dir, "cache", "distill")).filter((n) => !/\.(tokens\.i32|text\.txt)$/.test(n)), []);
});

test("two distills of one model at once (one output, one token cache) both finish: the output is whole, nothing left over", { skip: SKIP }, async () => {
  await rm(out, { force: true });
  await rm(`${out}.ckpt`, { force: true });
  await rm(join(dir, "cache", "distill"), { recursive: true, force: true }); // both write the token cache
  const a = distillChild(false), b = distillChild(false);
  const codes = await Promise.all([a.exited, b.exited]);
  assert.deepEqual(codes, [0, 0], `${a.stderr()}\n${b.stderr()}`);
  await assertOutputWhole("two at once");
  assert.ok(existsSync(out));
  assert.deepEqual(readdirSync(join(dir, "out")).sort(), ["tiny.distilled.gguf", "tiny.distilled.gguf.ckpt", "tiny.distilled.gguf.curves.json"], "no temporary files left beside the output");
  const cache = readdirSync(join(dir, "cache", "distill"));
  assert.ok(cache.length > 0 && cache.every((n) => /\.(tokens\.i32|text\.txt)$/.test(n)), `the token cache holds only whole files: ${cache.join(", ")}`);
});

// A zombie nobody reaps yet (a container's pid 1 may not) has exited too.
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

test("a trainer whose activeflow process is killed stops by itself (ACTIVEFLOW_PARENT_PID), started directly or under torchrun", { skip: spawnSync("python3", ["-c", ""]).status === 0 ? false : "python3 is not installed" }, async () => {
  const py = "from activeflow_distill.parent import watch_parent\nimport os, time\nwatch_parent()\nprint('ready', os.getpid(), flush=True)\ntime.sleep(60)";
  // Under torchrun the trainer's parent is torchrun, not activeflow: a shell stands in for it
  // (the command after python keeps the shell from exec'ing it).
  for (const [how, cmd, args] of [["directly", "python3", "['-c', process.argv[1]]"], ["under a launcher", "sh", "['-c', 'python3 -c \"$1\"; exit $?', 'sh', process.argv[1]]"]] as const) {
    // parent: a node process that starts the trainer as runPythonModule does, then waits.
    const parent = "const { spawn } = await import('node:child_process');" +
      `spawn('${cmd}', ${args}, { env: { ...process.env, ACTIVEFLOW_PARENT_PID: String(process.pid) }, stdio: ['ignore', 'inherit', 'ignore'] });` +
      "setInterval(() => {}, 1000);";
    const p = spawn(process.execPath, ["--input-type=module", "-e", parent, py], { env: { ...process.env, PYTHONPATH: join(REPO_ROOT, "python") }, stdio: ["ignore", "pipe", "ignore"] });
    let out = "";
    p.stdout!.on("data", (b: Buffer) => (out += b.toString()));
    const t1 = performance.now();
    while (!/ready \d+\n/.test(out) && performance.now() - t1 < 10_000) await sleep(20);
    if (!/ready \d+\n/.test(out)) p.kill("SIGKILL");
    assert.match(out, /ready \d+\n/, `${how}: python stopped before it was ready, its activeflow process running`);
    const child = Number(/ready (\d+)/.exec(out)![1]);
    // It keeps running while the activeflow process lives (several polls)...
    await sleep(1000);
    assert.ok(running(child), `${how}: python ${child} stopped while its activeflow process runs`);
    // ...and stops once that is killed.
    p.kill("SIGKILL");
    const t0 = performance.now();
    while (running(child) && performance.now() - t0 < 10_000) await sleep(20);
    assert.ok(!running(child), `${how}: python ${child} outlived its killed activeflow process by 10 s`);
  }
});
