// Distillation on several processes (torchrun, gloo on CPU): on a tiny 2-layer model, 2 processes
// with the same seed and global batch follow the 1-process loss curve step for step (relative
// difference <= 1e-4: only float reduction order differs), process 0 alone writes, and a DDP
// checkpoint resumes under FSDP on the same curve. 2 processes x 1 thread. Needs the Python
// environment, as test/distill.test.ts (ACTIVEFLOW_REQUIRE_TORCH=1 turns the skip into a failure).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { helpText, parseArgs, UsageError } from "../src/cli/args.js";
import { main } from "../src/cli/main.js";
import { captureContext } from "./helpers/cli.js";
import { launchCommand, venvDir, venvPython, venvReady } from "../src/distill/python.js";
import { Engine } from "../src/index.js";
import { GgmlType } from "../src/gguf/types.js";
import { calibrate } from "../src/sparsity/calibrate.js";
import { saveCalibration } from "../src/sparsity/store.js";
import { synthesizeModel } from "../src/synth/synth.js";

const TORCH = venvReady();
const TORCH_SKIP = TORCH
  ? false
  : process.env.ACTIVEFLOW_REQUIRE_TORCH === "1"
    ? false // run, and fail loudly below
    : `no PyTorch environment at ${venvDir()} (run \`activeflow distill\` once, or pip install -r python/requirements.txt there)`;
// Relative difference allowed between the 1- and 2-process train KL at each step.
const CURVE_TOLERANCE = 1e-4;

let dir = "";
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "af-distill-ddp-"));
});
after(async () => {
  if (dir !== "") await rm(dir, { recursive: true, force: true });
});

const context = (env: NodeJS.ProcessEnv) => captureContext({ env });

test("distill --procs / --batch / --fsdp: bad combinations are one-line usage errors, and --help lists them", () => {
  const bad: [string[], RegExp][] = [
    [["--procs", "0"], /--procs/],
    [["--procs", "2", "--batch", "3"], /--batch 3 does not split over --procs 2/],
    [["--batch", "0"], /--batch/],
    [["--fsdp"], /--fsdp .*--procs 2 or more/],
    [["--procs", "2", "--device", "cuda:1"], /names one GPU/],
  ];
  for (const [extra, re] of bad) {
    assert.throws(() => parseArgs(["distill", "m.gguf", "--sparsity", "0.5", ...extra]), (e: unknown) => e instanceof UsageError && re.test(e.message) && !e.message.includes("\n"), extra.join(" "));
  }
  const ok = parseArgs(["distill", "m.gguf", "--sparsity", "0.5", "--procs", "2", "--batch", "4", "--fsdp"]);
  assert.equal(ok.kind, "command");
  const help = helpText("distill");
  for (const o of ["--procs", "--batch", "--fsdp", "torchrun"]) assert.ok(help.includes(o), o);
});

test("--procs 2 starts the venv's torchrun with the cores split between the processes", async () => {
  const bin = join(dir, "venv", "bin");
  await mkdir(bin, { recursive: true });
  const py = join(bin, "python");
  const one = launchCommand(py, "activeflow_distill", ["m.gguf"]);
  assert.deepEqual([one.cmd, ...one.args], [py, "-m", "activeflow_distill", "m.gguf"]);
  assert.throws(() => launchCommand(py, "activeflow_distill", ["m.gguf"], { procs: 2 }), /torchrun not found/);
  await writeFile(join(bin, "torchrun"), "");
  const two = launchCommand(py, "activeflow_distill", ["m.gguf"], { procs: 2, threads: 1 });
  assert.equal(two.cmd, join(bin, "torchrun"));
  assert.deepEqual(two.args, ["--standalone", "--nproc-per-node=2", "-m", "activeflow_distill", "m.gguf"]);
  assert.equal(two.env.OMP_NUM_THREADS, "1");
  assert.equal(launchCommand(py, "activeflow_distill", [], { procs: 2 }).env.OMP_NUM_THREADS, String(Math.max(1, Math.floor(availableParallelism() / 2))));
});

interface Curves {
  processes: number;
  backend: string | null;
  fsdp: boolean;
  batch_per_process: number;
  steps: { step: number; train_kl: number }[];
  val: { step: number; val_kl: number }[];
}

test("2 processes (DDP, gloo) follow the 1-process loss curve; a DDP checkpoint resumes under FSDP on it", { skip: TORCH_SKIP }, async () => {
  assert.ok(TORCH, `ACTIVEFLOW_REQUIRE_TORCH=1 but ${venvPython()} cannot import torch, gguf and numpy`);
  const model = join(dir, "tiny.gguf");
  await synthesizeModel("tiny", GgmlType.Q4_0, model, { seed: 5 });
  const e = await Engine.load(model, { contextLength: 256 });
  try {
    await saveCalibration(model, await calibrate(e, { tokensPerPrompt: 32 }));
  } finally {
    await e.dispose();
  }
  const env = { ...process.env, ACTIVEFLOW_CACHE: dir, ACTIVEFLOW_DISTILL_VENV: venvDir() };
  const common = ["distill", model, "--sparsity", "0.5", "--lr", "3e-3", "--tokens", "2560", "--batch", "4", "--threads", "1", "--seed", "3", "--json"];
  const distil = async (out: string, extra: string[]): Promise<Record<string, unknown>> => {
    const c = context(env);
    const code = await main([...common, "--out", out, ...extra], c.ctx);
    assert.equal(code, 0, c.err());
    const lines = c.out().trim().split("\n");
    assert.equal(lines.length, 1, `one summary line on stdout (process 0 alone reports): ${c.out()}`);
    return JSON.parse(lines[0]!) as Record<string, unknown>;
  };
  const curves = async (out: string) => JSON.parse(await readFile(`${out}.curves.json`, "utf8")) as Curves;
  const same = (a: Curves, b: Curves, what: string) => {
    assert.equal(b.steps.length, a.steps.length, what);
    for (const [i, s] of a.steps.entries()) {
      const t = b.steps[i]!;
      assert.equal(t.step, s.step);
      assert.ok(Math.abs(t.train_kl - s.train_kl) <= CURVE_TOLERANCE * s.train_kl, `${what}, step ${s.step}: train KL ${t.train_kl} vs ${s.train_kl} with 1 process`);
    }
  };

  const one = join(dir, "one", "tiny.distilled.gguf");
  const r1 = await distil(one, ["--steps", "8"]);
  assert.equal(r1.processes, 1);
  const c1 = await curves(one);
  assert.equal(c1.steps.length, 8);
  // The curve moves (a test of sharding that a flat curve would pass proves nothing).
  assert.ok(Math.abs(c1.steps[7]!.train_kl - c1.steps[0]!.train_kl) > 10 * CURVE_TOLERANCE * c1.steps[0]!.train_kl, JSON.stringify(c1.steps));

  const two = join(dir, "two", "tiny.distilled.gguf");
  const r2 = await distil(two, ["--steps", "8", "--procs", "2"]);
  assert.deepEqual([r2.processes, r2.backend, r2.fsdp], [2, "gloo", false]);
  const c2 = await curves(two);
  assert.deepEqual([c2.processes, c2.batch_per_process], [2, 2]);
  same(c1, c2, "2 processes (DDP)");
  assert.ok(Math.abs((r2.val_kl_after as number) - (r1.val_kl_after as number)) <= CURVE_TOLERANCE * (r1.val_kl_after as number));
  // Process 0 alone wrote: the model, its checkpoint and curves, no temp files.
  assert.deepEqual((await readdir(join(dir, "two"))).sort(), ["tiny.distilled.gguf", "tiny.distilled.gguf.ckpt", "tiny.distilled.gguf.curves.json"]);

  // Stopped after 4 steps under DDP, resumed to 8 under FSDP: still the 1-process curve.
  const resumed = join(dir, "resumed", "tiny.distilled.gguf");
  await distil(resumed, ["--steps", "4", "--procs", "2"]);
  const r3 = await distil(resumed, ["--steps", "8", "--procs", "2", "--fsdp", "--resume"]);
  assert.deepEqual([r3.steps, r3.fsdp], [8, true]);
  same(c1, await curves(resumed), "2 processes, DDP to step 4 then FSDP");
});
