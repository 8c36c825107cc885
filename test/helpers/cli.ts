// Runs the real CLI in-process with captured output, as a user's shell would run `activeflow`.
import { PassThrough } from "node:stream";
import type { CliContext } from "../../src/cli/commands/context.js";
import { loadRealEngine } from "../../src/cli/commands/model.js";
import { main } from "../../src/cli/main.js";

export interface CliResult {
  code: number;
  out: string;
  err: string;
}

// argv after `activeflow`; stdin: what the command reads; env: defaults to this process's.
export async function runCli(argv: string[], options: { stdin?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  let out = "", err = "";
  const sink = (append: (s: string) => void) => ({ write: (s: string) => (append(s), true) }) as unknown as CliContext["stdout"];
  const stdin = new PassThrough();
  stdin.end(options.stdin ?? "");
  const ctx: CliContext = {
    stdin, stdout: sink((s) => (out += s)), stderr: sink((s) => (err += s)), env: options.env ?? { ...process.env },
    loadEngine: loadRealEngine, onInterrupt: () => () => {},
  };
  const code = await main(argv, ctx);
  return { code, out, err };
}
