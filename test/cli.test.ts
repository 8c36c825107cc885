import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { PassThrough } from "node:stream";
import { fileURLToPath } from "node:url";
import { COMMANDS, OPTIONS, helpText, parseArgs, UsageError, type CommandName } from "../src/cli/args.js";
import { main } from "../src/cli/main.js";
import type { CliContext, EngineLike } from "../src/cli/commands/context.js";
import { ActiveflowError } from "../src/errors.js";
import type { ChatMessage } from "../src/tokenizer/types.js";
import type { GeneratedToken, GenerateOptions, GenerationStats } from "../src/engine/types.js";
import { SMOLLM2 } from "../src/fetch/smollm2.js";
import { modelsDir } from "../src/fetch/cache.js";

// The repo root, from test/ (tsx) or dist/test/ (npm test).
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const up = dirname(dir);
    if (up === dir) throw new Error("package.json not found above the test file");
    dir = up;
  }
  return dir;
}
const ROOT = repoRoot();
const BIN = join(ROOT, "bin", "activeflow.js");
const DIST_MAIN = join(ROOT, "dist", "src", "cli", "main.js");

// ---- an in-process context with captured output and a scripted engine ----

interface Harness {
  ctx: CliContext;
  out: () => string;
  err: () => string;
  loads: { path: string; options: unknown }[];
  calls: { kind: "generate" | "chat"; input: string | ChatMessage[]; options: GenerateOptions }[];
  interrupt: () => void;
}

const WORDS = ["Hello", ",", " world", "!", " More", " text"];

function stats(generated: number, stopReason: GenerationStats["stopReason"]): GenerationStats {
  return {
    promptTokens: 3, generatedTokens: generated, prefillSeconds: 0.01, decodeSeconds: 0.02,
    prefillTokensPerSecond: 300, decodeTokensPerSecond: 100, peakRssBytes: 123 * 1024 * 1024,
    modelBytes: 4567, threads: 1, isa: "fake", stopReason,
  };
}

function harness(opts: { stdin?: string; interruptAfter?: number; failChatOn?: string } = {}): Harness {
  let out = "";
  let err = "";
  const handlers = new Set<() => void>();
  const h: Harness = {
    out: () => out,
    err: () => err,
    loads: [],
    calls: [],
    interrupt: () => handlers.forEach((f) => f()),
    ctx: undefined as unknown as CliContext,
  };
  async function* gen(options: GenerateOptions): AsyncGenerator<GeneratedToken, GenerationStats, void> {
    const n = Math.min(options.maxTokens ?? 128, WORDS.length);
    for (let i = 0; i < n; i++) {
      if (options.signal?.aborted) return stats(i, "aborted");
      yield { id: 100 + i, text: WORDS[i]! };
      if (opts.interruptAfter === i + 1) h.interrupt();
    }
    return stats(n, n === WORDS.length ? "eos" : "length");
  }
  const engine: EngineLike = {
    modelBytes: 4567,
    generate(prompt, options = {}) {
      h.calls.push({ kind: "generate", input: prompt, options });
      return gen(options);
    },
    chat(messages, options = {}) {
      h.calls.push({ kind: "chat", input: messages.map((m) => ({ ...m })), options });
      const last = messages[messages.length - 1];
      if (opts.failChatOn !== undefined && last?.content === opts.failChatOn) {
        throw new ActiveflowError("CONTEXT_FULL", "prompt has 9999 tokens; the context holds 2048");
      }
      return gen(options);
    },
    async dispose() {},
  };
  const stdin = new PassThrough();
  stdin.end(opts.stdin ?? "");
  const sink = (append: (s: string) => void) => ({ write: (s: string) => (append(s), true) }) as unknown as CliContext["stdout"];
  h.ctx = {
    stdin,
    stdout: sink((s) => (out += s)),
    stderr: sink((s) => (err += s)),
    env: { ...process.env },
    loadEngine: async (path, options) => {
      h.loads.push({ path, options });
      return engine;
    },
    onInterrupt(handler) {
      handlers.add(handler);
      return () => handlers.delete(handler);
    },
  };
  return h;
}

// A file that exists, so model resolution passes; the fake engine never reads it.
const ANY_FILE = fileURLToPath(import.meta.url);

// ---- parsing and help ----

test("help for each command lists every option it parses, and parses every option it lists", () => {
  for (const name of Object.keys(COMMANDS) as CommandName[]) {
    const help = helpText(name);
    for (const key of COMMANDS[name].options) {
      const o = OPTIONS[key];
      assert.ok(help.includes(`--${o.long}`), `${name} --help lacks --${o.long}`);
      if ("short" in o) assert.ok(help.includes(`-${o.short}, --${o.long}`), `${name} --help lacks -${o.short}`);
    }
    const listed = [...help.matchAll(/(?<![\w-])--([a-z][a-z-]*)/g)].map((m) => m[1]!);
    for (const long of listed) {
      const o = Object.values(OPTIONS).find((x) => x.long === long);
      assert.ok(o !== undefined && COMMANDS[name].options.some((k) => OPTIONS[k].long === long), `${name} --help mentions --${long}, which ${name} does not parse`);
    }
  }
  const top = helpText();
  for (const name of Object.keys(COMMANDS)) assert.ok(top.includes(`  ${name} `));
});

test("parser: values, short forms, = syntax, flags", () => {
  const p = parseArgs(["run", "m.gguf", "-p", "hi there", "-n", "12", "--threads=2", "--top-p", "0.5", "--greedy", "--seed", "7", "-t3"]);
  assert.equal(p.kind, "command");
  if (p.kind !== "command") return;
  assert.deepEqual(p.positionals, ["m.gguf"]);
  assert.deepEqual(p.values, { prompt: "hi there", maxTokens: 12, threads: 3, topP: 0.5, greedy: true, seed: 7 });
  assert.deepEqual(parseArgs(["chat", "--help"]), { kind: "help", command: "chat" });
  assert.deepEqual(parseArgs(["help", "fetch"]), { kind: "help", command: "fetch" });
  assert.deepEqual(parseArgs(["--version"]), { kind: "version" });
  // A prompt that looks like an option is still the value of -p.
  const q = parseArgs(["run", "m", "-p", "--not-an-option"]);
  assert.ok(q.kind === "command" && q.values.prompt === "--not-an-option");
});

test("parser: bad command lines are UsageErrors naming the option and value", () => {
  const bad: [string[], RegExp][] = [
    [["run", "m", "-p", "x", "--foo"], /^unknown option --foo$/],
    [["run", "m", "-p", "x", "--threads", "0"], /--threads: "0" \(expected an integer >= 1/],
    [["run", "m", "-p", "x", "-n", "abc"], /-n: "abc" \(expected an integer >= 1/],
    [["run", "m", "-p", "x", "--temperature", "hot"], /--temperature: "hot"/],
    [["run", "m", "-p", "x", "--top-p", "1.5"], /--top-p: "1.5" \(expected a number >= 0 and <= 1\)/],
    [["run", "m", "-p", "x", "--repeat-penalty", "0"], /--repeat-penalty: "0" \(expected a number > 0/],
    [["run", "m", "-p", "x", "--seed", "1.5"], /--seed: "1.5"/],
    [["run", "m", "-p", "x", "--seed"], /--seed needs a value/],
    [["run", "m", "-p", "x", "--greedy=yes"], /--greedy takes no value/],
    [["run", "m"], /run needs a prompt/],
    [["run"], /missing <model>/],
    [["run", "a", "b", "-p", "x"], /unexpected argument "b"/],
    [["fetch", "llama"], /unknown model "llama"/],
    [["fetch", "smollm2", "--top-k", "3"], /--top-k does not apply to fetch/],
    [["frobnicate"], /unknown command "frobnicate"/],
    [["--frob"], /unknown option --frob/],
  ];
  for (const [argv, re] of bad) {
    assert.throws(() => parseArgs(argv), (e: unknown) => e instanceof UsageError && re.test(e.message), argv.join(" "));
  }
});

// ---- main() in-process ----

test("main: usage errors exit 2 with one error line and a --help hint", async () => {
  const h = harness();
  assert.equal(await main(["run", "m.gguf", "-p", "x", "--foo"], h.ctx), 2);
  assert.equal(h.err(), "error: unknown option --foo\nrun 'activeflow run --help' for usage\n");
  assert.equal(h.out(), "");
  const h2 = harness();
  assert.equal(await main(["run", "m.gguf", "-p", "x", "--threads", "0"], h2.ctx), 2);
  assert.match(h2.err(), /^error: invalid value for --threads: "0"/);
});

test("main: a missing model file is one line naming the path, exit 1, no stack", async () => {
  const h = harness();
  const missing = resolve("/definitely/not/here.gguf");
  assert.equal(await main(["run", missing, "-p", "x"], h.ctx), 1);
  assert.equal(h.err(), `error: model file not found: ${missing}\n`);
  assert.equal(h.loads.length, 0);
  const v = harness();
  assert.equal(await main(["run", missing, "-p", "x", "--verbose"], v.ctx), 1);
  assert.match(v.err(), /\n {4}at /, "--verbose adds the stack");
});

test("main: run streams the text and prints stats to stderr; options reach the engine", async () => {
  const h = harness();
  const code = await main(["run", ANY_FILE, "-p", "Say hi", "-n", "3", "--threads", "2", "--ctx", "512", "--top-k", "5", "--seed", "9"], h.ctx);
  assert.equal(code, 0);
  assert.equal(h.out(), "Hello, world\n");
  assert.match(h.err(), /^stats: 3 prompt \+ 3 generated tokens \| prefill 300\.0 tok\/s \| decode 100\.0 tok\/s \| peak RSS 123\.0 MB \| fake, 1 thread \| stop: length \| seed 9\n$/);
  assert.deepEqual(h.loads, [{ path: ANY_FILE, options: { threads: 2, contextLength: 512 } }]);
  const call = h.calls[0]!;
  assert.equal(call.input, "Say hi");
  assert.equal(call.options.maxTokens, 3);
  assert.equal(call.options.topK, 5);
  assert.equal(call.options.seed, 9);
  assert.ok(call.options.signal instanceof AbortSignal);
});

test("main: --json prints only one JSON line with the required fields", async () => {
  const h = harness();
  assert.equal(await main(["run", ANY_FILE, "-p", "x", "-n", "2", "--greedy", "--json"], h.ctx), 0);
  const lines = h.out().trimEnd().split("\n");
  assert.equal(lines.length, 1);
  const j = JSON.parse(lines[0]!) as Record<string, unknown>;
  for (const k of ["tokens", "text", "prefill_tokens_per_s", "decode_tokens_per_s", "peak_rss_bytes", "model_bytes", "prompt_tokens", "generated_tokens", "isa", "threads", "stop_reason"]) {
    assert.ok(k in j, `JSON lacks ${k}`);
  }
  assert.deepEqual(j.tokens, [100, 101]);
  assert.equal(j.text, "Hello,");
  assert.equal(j.seed, null);
  assert.equal(h.calls[0]!.options.greedy, true);
  assert.match(h.err(), /^stats: /);
});

test("main: Ctrl-C aborts the generation, still prints stats, exits 130", async () => {
  const h = harness({ interruptAfter: 2 });
  assert.equal(await main(["run", ANY_FILE, "-p", "x", "--seed", "1"], h.ctx), 130);
  assert.equal(h.out(), "Hello,\n");
  assert.match(h.err(), /stop: aborted/);
});

test("main: chat -p runs one turn through the chat template", async () => {
  const h = harness();
  assert.equal(await main(["chat", ANY_FILE, "-p", "Hi", "--system", "Be brief.", "-n", "4", "--greedy"], h.ctx), 0);
  assert.equal(h.out(), "Hello, world!\n");
  assert.deepEqual(h.calls[0]!.input, [
    { role: "system", content: "Be brief." },
    { role: "user", content: "Hi" },
  ]);
});

test("main: chat session keeps history, /reset clears it, errors do not end it, /exit quits", async () => {
  const h = harness({ stdin: "First\nSecond\n/reset\nTOO LONG\nThird\n/exit\nNever sent\n", failChatOn: "TOO LONG" });
  assert.equal(await main(["chat", ANY_FILE, "-n", "2", "--seed", "5"], h.ctx), 0);
  const inputs = h.calls.map((c) => c.input as ChatMessage[]);
  assert.equal(inputs.length, 4);
  assert.deepEqual(inputs[1], [
    { role: "user", content: "First" },
    { role: "assistant", content: "Hello," },
    { role: "user", content: "Second" },
  ]);
  assert.deepEqual(inputs[3], [{ role: "user", content: "Third" }], "reset and the failed turn left no history");
  assert.match(h.err(), /error: prompt has 9999 tokens; the context holds 2048 \(type \/reset to start over\)/);
  // Each turn gets its own seed so replies differ, reproducibly.
  assert.deepEqual(h.calls.map((c) => c.options.seed), [5, 6, 7, 8]);
  assert.equal(h.out(), "Hello,\nHello,\nHello,\n");
});

// ---- the real binary (compiled dist/) ----

function runBin(args: string[], env: NodeJS.ProcessEnv = process.env) {
  return spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, env, encoding: "utf8", timeout: 120_000 });
}

test("bin: --help, --version, unknown option, missing model", (t) => {
  if (!existsSync(DIST_MAIN)) return t.skip(`${DIST_MAIN} not built (run npm run build:ts)`);
  const help = runBin(["run", "--help"]);
  assert.equal(help.status, 0);
  assert.match(help.stdout, /--max-tokens/);
  const version = runBin(["--version"]);
  assert.match(version.stdout, /^activeflow \d+\.\d+\.\d+/);
  const unknown = runBin(["chat", "x.gguf", "--foo"]);
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /^error: unknown option --foo\n/);
  const missing = runBin(["run", "/nope/model.gguf", "-p", "hi"]);
  assert.equal(missing.status, 1);
  assert.equal(missing.stderr, "error: model file not found: /nope/model.gguf\n");
});

test("bin: run on the real SmolLM2 with --json (greedy)", (t) => {
  if (!existsSync(DIST_MAIN)) return t.skip(`${DIST_MAIN} not built (run npm run build:ts)`);
  const model = join(modelsDir(), SMOLLM2.fileName);
  if (!existsSync(model)) return t.skip(`model not found at ${model} (run activeflow fetch smollm2)`);
  const r = runBin(["run", model, "-p", "The capital of France is", "-n", "6", "--greedy", "--json"]);
  if (r.status !== 0 && /NATIVE|native addon|not built/i.test(r.stderr)) return t.skip(`native addon unavailable: ${r.stderr.trim()}`);
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trimEnd().split("\n");
  const j = JSON.parse(lines[lines.length - 1]!) as { tokens: number[]; text: string; generated_tokens: number; model_bytes: number; stop_reason: string };
  assert.equal(j.tokens.length, j.generated_tokens);
  assert.ok(j.generated_tokens >= 1 && j.generated_tokens <= 6);
  assert.equal(j.model_bytes, SMOLLM2.file.size);
  assert.match(r.stderr, /stats: \d+ prompt \+ \d+ generated tokens/);
});
