// The Python side of distillation: a venv in the cache with torch, gguf and numpy from PyPI
// (python/requirements.txt), and `python -m activeflow_distill` run with PYTHONPATH=python.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ActiveflowError } from "../errors.js";
import { cacheRoot } from "../fetch/cache.js";

// $ACTIVEFLOW_DISTILL_VENV, else <cache>/distill-venv.
export function venvDir(env: NodeJS.ProcessEnv = process.env): string {
  const v = env.ACTIVEFLOW_DISTILL_VENV;
  return v !== undefined && v !== "" ? v : join(cacheRoot(env), "distill-venv");
}

export function venvPython(env: NodeJS.ProcessEnv = process.env): string {
  return join(venvDir(env), "bin", "python");
}

// The repository's python/ directory: found from this file (src/distill or dist/src/distill).
export function pythonDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name?: string };
      if (pkg.name === "activeflow" && existsSync(join(dir, "python", "activeflow_distill"))) return join(dir, "python");
    } catch {
      // not the package root; look one level up
    }
    dir = dirname(dir);
  }
  throw new ActiveflowError("ENOENT_MODEL", "cannot find the python/activeflow_distill package beside the activeflow installation");
}

// True when the venv's python has everything the tool needs installed. find_spec locates a
// package without importing it: importing torch only to check for it cost every run seconds.
export function venvReady(env: NodeJS.ProcessEnv = process.env): boolean {
  const py = venvPython(env);
  if (!existsSync(py)) return false;
  const check = "import importlib.util as u, sys\nsys.exit(0 if all(u.find_spec(m) for m in ('torch', 'gguf', 'numpy', 'tqdm')) else 1)";
  return spawnSync(py, ["-c", check], { stdio: "ignore" }).status === 0;
}

function run(cmd: string, args: string[], log: (s: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    p.stdout.on("data", (b: Buffer) => log(b.toString()));
    p.stderr.on("data", (b: Buffer) => log(b.toString()));
    p.on("error", (e) => reject(new ActiveflowError("DISTILL", `cannot run ${cmd}: ${e.message}`)));
    p.on("close", (code) =>
      code === 0 ? resolve() : reject(new ActiveflowError("DISTILL", `${cmd} ${args.join(" ")} failed with exit code ${code}`)),
    );
  });
}

// Creates the venv and installs python/requirements.txt when it is missing or incomplete.
export async function ensureVenv(log: (s: string) => void, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (venvReady(env)) return venvPython(env);
  const dir = venvDir(env);
  log(`setting up the distillation environment in ${dir}: pip downloads torch, gguf and numpy from PyPI (torch is over 1 GB)\n`);
  if (!existsSync(join(dir, "bin", "python"))) await run("python3", ["-m", "venv", dir], log);
  await run(join(dir, "bin", "pip"), ["install", "--disable-pip-version-check", "-r", join(pythonDir(), "requirements.txt")], log);
  if (!venvReady(env)) throw new ActiveflowError("DISTILL", `${dir}: python still does not find torch, gguf, numpy and tqdm after pip install`);
  return venvPython(env);
}

export interface PythonRun {
  code: number;
  stdout: string;
}

// How to start the tool: `python -m <module>` alone, or torchrun (the venv's, beside its python)
// with `procs` processes on this machine; threads are per process.
export interface Launch {
  procs: number;
  threads?: number;
}

// The command line runPythonModule runs, and the environment it adds.
export function launchCommand(python: string, module: string, args: string[], launch: Launch = { procs: 1 }): { cmd: string; args: string[]; env: NodeJS.ProcessEnv } {
  const env: NodeJS.ProcessEnv = { PYTHONPATH: pythonDir(), PYTHONUNBUFFERED: "1" };
  if (launch.procs <= 1) return { cmd: python, args: ["-m", module, ...args], env };
  const torchrun = join(dirname(python), "torchrun");
  if (!existsSync(torchrun)) throw new ActiveflowError("DISTILL", `${torchrun} not found: the torch in ${dirname(dirname(python))} has no torchrun`);
  // torchrun would set 1 thread per process (and say so); split this machine's cores instead.
  env.OMP_NUM_THREADS = String(launch.threads ?? Math.max(1, Math.floor(availableParallelism() / launch.procs)));
  return { cmd: torchrun, args: ["--standalone", `--nproc-per-node=${launch.procs}`, "-m", module, ...args], env };
}

// Runs the module (see launchCommand); stderr (progress bar, messages) goes to `onStderr`.
export function runPythonModule(
  python: string,
  module: string,
  args: string[],
  onStderr: (s: string) => void,
  signal?: AbortSignal,
  launch: Launch = { procs: 1 },
): Promise<PythonRun> {
  return new Promise((resolve, reject) => {
    const c = launchCommand(python, module, args, launch);
    // ACTIVEFLOW_PARENT_PID: the tool stops itself if this process dies without signalling it
    // (python/activeflow_distill/parent.py).
    const env = { ...process.env, ...c.env, ACTIVEFLOW_PARENT_PID: String(process.pid) };
    const p = spawn(c.cmd, c.args, { stdio: ["ignore", "pipe", "pipe"], env });
    let stdout = "";
    p.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
    p.stderr.on("data", (b: Buffer) => onStderr(b.toString()));
    // torchrun passes SIGINT on to its processes.
    const onAbort = () => p.kill("SIGINT");
    signal?.addEventListener("abort", onAbort);
    p.on("error", (e) => reject(new ActiveflowError("DISTILL", `cannot run ${c.cmd}: ${e.message}`)));
    p.on("close", (code) => {
      signal?.removeEventListener("abort", onAbort);
      resolve({ code: code ?? 1, stdout });
    });
  });
}
