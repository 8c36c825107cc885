// Runs the real CLI in-process with captured output, as a user's shell would run `activeflow`.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { after, before } from "node:test";
import type { CliContext } from "../../src/cli/commands/context.js";
import { loadRealEngine } from "../../src/cli/commands/model.js";
import { main } from "../../src/cli/main.js";

export interface CliResult {
  code: number;
  out: string;
  err: string;
}

// A CLI context whose output is captured; loadEngine defaults to the real engine.
export function captureContext(options: { stdin?: string; env?: NodeJS.ProcessEnv; loadEngine?: CliContext["loadEngine"] } = {}): {
  ctx: CliContext;
  out: () => string;
  err: () => string;
} {
  let out = "", err = "";
  const sink = (append: (s: string) => void) => ({ write: (s: string) => (append(s), true) }) as unknown as CliContext["stdout"];
  const stdin = new PassThrough();
  stdin.end(options.stdin ?? "");
  const ctx: CliContext = {
    stdin, stdout: sink((s) => (out += s)), stderr: sink((s) => (err += s)), env: options.env ?? { ...process.env },
    loadEngine: options.loadEngine ?? loadRealEngine, onInterrupt: () => () => {},
  };
  return { ctx, out: () => out, err: () => err };
}

// argv after `activeflow`; stdin: what the command reads; env: defaults to this process's.
export async function runCli(argv: string[], options: { stdin?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  const c = captureContext(options);
  const code = await main(argv, c.ctx);
  return { code, out: c.out(), err: c.err() };
}

// A temporary directory for this test file, with $ACTIVEFLOW_CACHE inside it so conversions and
// sweeps never touch the user's cache; removed and restored after the file's tests. `ready`
// runs once the directory exists (models to build in it).
export function useTempCache(prefix: string, ready: (dir: string) => void | Promise<void>): void {
  let dir = "";
  let saved: string | undefined;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), prefix));
    saved = process.env.ACTIVEFLOW_CACHE;
    process.env.ACTIVEFLOW_CACHE = join(dir, "cache");
    await ready(dir);
  });
  after(async () => {
    if (saved === undefined) delete process.env.ACTIVEFLOW_CACHE;
    else process.env.ACTIVEFLOW_CACHE = saved;
    if (dir !== "") await rm(dir, { recursive: true, force: true });
  });
}
