// Entry point of the `activeflow` command (bin/activeflow.js calls main and sets the exit code).
// Exit codes: 0 ok, 1 failure while running, 2 bad command line, 130 stopped by Ctrl-C, 143 by SIGTERM
// (serve stops on either signal and exits 0).
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { isActiveflowError } from "../errors.js";
import { helpText, parseArgs, UsageError } from "./args.js";
import { cacheCommand, sweepCache } from "./commands/cache.js";
import { calibrateCommand } from "./commands/calibrate.js";
import { chatCommand } from "./commands/chat.js";
import type { CliContext } from "./commands/context.js";
import { convertCommand } from "./commands/convert.js";
import { distillCommand } from "./commands/distill.js";
import { evalCommand } from "./commands/eval.js";
import { fetchCommand } from "./commands/fetch.js";
import { loadRealEngine } from "./commands/model.js";
import { reorderCommand } from "./commands/reorder.js";
import { runCommand } from "./commands/run.js";
import { serveCommand } from "./commands/serve.js";
import { synthCommand } from "./commands/synth.js";
import { inspectCommand } from "./commands/inspect.js";
import { tokenizeCommand } from "./commands/tokenize.js";
import { verifyCommand } from "./commands/verify.js";

export async function main(argv: readonly string[], ctx: CliContext = processContext()): Promise<number> {
  const verbose = argv.includes("--verbose");
  try {
    const parsed = parseArgs(argv);
    if (parsed.kind === "help") {
      ctx.stdout.write(helpText(parsed.command));
      return 0;
    }
    if (parsed.kind === "version") {
      ctx.stdout.write(`activeflow ${packageVersion()}\n`);
      return 0;
    }
    const model = parsed.positionals[0]!;
    // Temporary files of killed processes go before anything else touches the cache.
    if (parsed.command !== "synth" && parsed.command !== "verify") await sweepCache(ctx.env);
    switch (parsed.command) {
      case "run":
        return await runCommand(ctx, model, parsed.values);
      case "chat":
        return await chatCommand(ctx, model, parsed.values);
      case "serve":
        return await serveCommand(ctx, model, parsed.values);
      case "fetch":
        return await fetchCommand(ctx, parsed.values);
      case "convert":
        return await convertCommand(ctx, model, parsed.positionals[1]!, parsed.values);
      case "calibrate":
        return await calibrateCommand(ctx, model, parsed.values);
      case "reorder":
        return await reorderCommand(ctx, model, parsed.values);
      case "eval":
        return await evalCommand(ctx, model, parsed.values);
      case "distill":
        return await distillCommand(ctx, model, parsed.values);
      case "synth":
        return await synthCommand(ctx, model, parsed.values);
      case "verify":
        return await verifyCommand(ctx, model, parsed.values);
      case "tokenize":
        return await tokenizeCommand(ctx, model, parsed.positionals[1]!, parsed.values);
      case "inspect":
        return await inspectCommand(ctx, model, parsed.values);
      case "cache":
        return await cacheCommand(ctx, model, parsed.positionals[1], parsed.values);
    }
  } catch (e) {
    return reportError(ctx, e, verbose);
  }
}

function reportError(ctx: CliContext, e: unknown, verbose: boolean): number {
  if (e instanceof UsageError) {
    const where = e.command !== undefined ? `activeflow ${e.command} --help` : "activeflow --help";
    ctx.stderr.write(`error: ${e.message}\nrun '${where}' for usage\n`);
    return 2;
  }
  if (isAbort(e)) {
    ctx.stderr.write("stopped\n");
    return 130;
  }
  const message = e instanceof Error ? e.message : String(e);
  ctx.stderr.write(`error: ${message}\n`);
  if (verbose && e instanceof Error && e.stack !== undefined) ctx.stderr.write(`${e.stack}\n`);
  else if (!isActiveflowError(e) && !isEnvironmentError(e)) ctx.stderr.write("(this looks like a bug; run with --verbose for the stack trace)\n");
  return 1;
}

// Ctrl-C while loading or converting: the operation cleaned up and the process stops.
function isAbort(e: unknown): boolean {
  return (isActiveflowError(e) && e.code === "ABORTED") || (e instanceof Error && e.name === "AbortError");
}

// The machine refused a file operation (full disk, permissions, read-only file system), or a
// path the user configured is not what it must be ($ACTIVEFLOW_CACHE naming a file, an output
// in a missing directory): the message already names the path; not a bug of ours.
const ENVIRONMENT_CODES: ReadonlySet<string> = new Set([
  "ENOSPC", "EDQUOT", "EACCES", "EPERM", "EROFS", "EMFILE", "ENOTDIR", "EISDIR", "ENOENT", "ENAMETOOLONG", "ELOOP",
]);
function isEnvironmentError(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === "string" && ENVIRONMENT_CODES.has(code);
}

// The real process: its streams, environment and SIGINT. A second Ctrl-C while a generation is
// still stopping ends the process at once.
function processContext(): CliContext {
  // `activeflow run ... | head -1` closes our stdout early: that is a normal way to stop.
  process.stdout.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") process.exit(0);
    throw e;
  });
  // SIGTERM ends the process through exit, so the exit-time removal of temporary files runs,
  // unless a command (serve) takes it to stop in its own time.
  const onTerm = new Set<() => void>();
  process.on("SIGTERM", () => {
    if (onTerm.size === 0) process.exit(143);
    for (const f of [...onTerm]) f();
  });
  return {
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    loadEngine: loadRealEngine,
    onInterrupt(handler) {
      let count = 0;
      const listener = () => {
        if (++count > 1) process.exit(130);
        handler();
      };
      process.on("SIGINT", listener);
      return () => {
        process.removeListener("SIGINT", listener);
      };
    },
    onTerminate(handler) {
      onTerm.add(handler);
      return () => {
        onTerm.delete(handler);
      };
    },
  };
}

function packageVersion(): string {
  // dist/src/cli/main.js and src/cli/main.ts both sit below the package root.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name?: string; version?: string };
      if (pkg.name === "activeflow" && pkg.version !== undefined) return pkg.version;
    } catch {
      // not here; look one level up
    }
    dir = dirname(dir);
  }
  return "unknown";
}
