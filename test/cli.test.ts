import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { PassThrough } from "node:stream";
import { fileURLToPath } from "node:url";
import { COMMANDS, OPTIONS, helpText, parseArgs, UsageError, type CommandName } from "../src/cli/args.js";
import { main } from "../src/cli/main.js";
import type { CliContext, EngineLike } from "../src/cli/commands/context.js";
import { ActiveflowError } from "../src/errors.js";
import { resolveBudget } from "../src/memory/budget.js";
import type { ChatMessage } from "../src/tokenizer/types.js";
import type { FlashRunStats, GeneratedToken, GenerateOptions, GenerationStats, LoadOptions } from "../src/engine/types.js";
import { buildTinyModel } from "../src/synth/tinyModel.js";
import { SMOLLM2 } from "../src/fetch/smollm2.js";
import { modelsDir } from "../src/fetch/cache.js";
import { runCli } from "./helpers/cli.js";
import { BIN, REPO_ROOT } from "./helpers/repo.js";

const ROOT = REPO_ROOT;
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

function stats(generated: number, stopReason: GenerationStats["stopReason"], floor?: number): GenerationStats {
  return {
    ...(floor !== undefined ? { runtimeFloorBytes: floor } : {}),
    promptTokens: 3, prefillTokens: 3, reusedTokens: 0, generatedTokens: generated, prefillSeconds: 0.01, decodeSeconds: 0.02,
    prefillTokensPerSecond: 300, decodeTokensPerSecond: 100, peakRssBytes: 123 * 1024 * 1024,
    modelBytes: 4567, threads: 1, isa: "fake", stopReason,
  };
}

function harness(opts: { stdin?: string; interruptAfter?: number; failChatOn?: string; flash?: FlashRunStats; floor?: number } = {}): Harness {
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
      if (options.signal?.aborted) return stats(i, "aborted", opts.floor);
      yield { id: 100 + i, text: WORDS[i]! };
      if (opts.interruptAfter === i + 1) h.interrupt();
    }
    const st = stats(n, n === WORDS.length ? "eos" : "length", opts.floor);
    if (opts.flash) st.flash = opts.flash;
    return st;
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
    const listed = [...help.matchAll(/(?<![\w-])--([a-z][a-z0-9-]*)/g)].map((m) => m[1]!);
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
    [["run", "m", "-p", "x", "--dram", "0"], /--dram: "0" \(expected bytes, a size such as 512MB or 2GB, or a percentage/],
    [["run", "m", "-p", "x", "--dram", "lots"], /--dram: "lots"/],
    [["run", "m", "-p", "x", "--dram", "0%"], /--dram: "0%"/],
    [["run", "m", "-p", "x", "--sparsity", "1"], /--sparsity: "1" \(expected a number >= 0 and < 1\)/],
    [["chat", "m", "--sparsity", "-0.1"], /--sparsity: "-0.1"/],
    [["run", "m", "-p", "x", "--group-size", "0"], /--group-size: "0" \(expected an integer >= 1/],
    [["run", "m", "-p", "x", "--verify-reads=1"], /--verify-reads takes no value/],
    [["convert", "in.gguf"], /missing <out>: usage: activeflow convert/],
    [["convert", "in.gguf", "out", "--column-type", "q3_x"], /--column-type: "q3_x" \(expected one of f32, f16, q4_0/],
    [["convert", "in.gguf", "out", "--dram", "1GB"], /--dram does not apply to convert/],
    [["run", "m", "-p", "x", "--ctx", "0"], /invalid value for --ctx: "0" \(expected an integer >= 1/],
    [["chat", "m", "--ctx", "-64"], /invalid value for --ctx: "-64" \(expected an integer >= 1/],
    [["run", "m", "-p", "x", "--ctx", "1.5"], /invalid value for --ctx: "1\.5" \(expected an integer/],
    [["run", "m", "-p", "x", "--ctx", "2k"], /invalid value for --ctx: "2k"/],
    [["run", "m", "-p", "x", "--ctx", "2097152"], /invalid value for --ctx: "2097152" \(expected an integer >= 1 and <= 1048576/],
    [["calibrate"], /missing <model>/],
    [["calibrate", "m", "--tokens", "3"], /--tokens: "3" \(expected an integer >= 16/],
    [["calibrate", "m", "--sparsity", "0.5"], /--sparsity does not apply to calibrate/],
    [["eval", "m"], /eval needs the evaluation text: --text <file>/],
    [["eval", "m", "--text", "t", "--sparsity", "0.95x"], /--sparsity: "0.95x"/],
    [["eval", "m", "--text", "t", "--window", "1"], /--window: "1" \(expected an integer >= 2/],
    [["synth", "out.gguf"], /synth needs a shape: --shape <tiny\|small\|1b\|llama2-7b\|llama3-8b\|tiny-moe\|moe-2b\|mixtral-8x7b\|qwen3-30b-a3b\|olmoe-1b-7b\|mixtral-8x7b-8l>/],
    [["synth", "out.gguf", "--shape", "huge"], /--shape: "huge" \(expected one of tiny, small, 1b, llama2-7b, llama3-8b, tiny-moe, moe-2b, mixtral-8x7b, qwen3-30b-a3b, olmoe-1b-7b, mixtral-8x7b-8l\)/],
    [["synth", "out.gguf", "--shape", "tiny", "--type", "q5_x"], /--type: "q5_x"/],
    [["synth", "--shape", "tiny"], /missing <out.gguf>/],
    [["verify"], /missing <file>/],
    [["verify", "a", "b"], /unexpected argument "b"/],
  ];
  for (const [argv, re] of bad) {
    assert.throws(() => parseArgs(argv), (e: unknown) => e instanceof UsageError && re.test(e.message), argv.join(" "));
  }
});

test("parser: flash options of run/chat and the new commands' options", () => {
  const p = parseArgs(["run", "m", "-p", "x", "--dram", "35%", "--sparsity", "0.5", "--group-size", "2", "--verify-reads"]);
  assert.ok(p.kind === "command");
  assert.deepEqual(p.values, { prompt: "x", dram: { kind: "percent", percent: 35, text: "35%" }, sparsity: 0.5, groupSize: 2, verifyReads: true });
  // Parsed once here; the engine resolves a percentage against the model file's size (1000 here).
  const parsed: [string, number][] = [["123456", 123456], ["512MB", 512 << 20], ["2GB", 2 ** 31], ["1.5GiB", 1.5 * 2 ** 30], ["35%", 350], ["0.5%", 5]];
  for (const [dram, bytes] of parsed) {
    const q = parseArgs(["chat", "m", "--dram", dram]);
    assert.ok(q.kind === "command" && q.values.dram !== undefined, dram);
    assert.equal(resolveBudget(q.values.dram, 1000), bytes, dram);
    assert.equal(q.values.dram.text, dram);
  }
  const c = parseArgs(["convert", "a.gguf", "b.af", "--group-size", "3", "--column-type", "Q8_0", "--json"]);
  assert.ok(c.kind === "command");
  assert.deepEqual(c.positionals, ["a.gguf", "b.af"]);
  assert.deepEqual(c.values, { groupSize: 3, columnType: "q8_0", json: true });
  const s = parseArgs(["synth", "--shape", "1b", "--type", "q4_0", "o.gguf", "--seed", "5"]);
  assert.ok(s.kind === "command");
  assert.deepEqual(s.positionals, ["o.gguf"]);
  assert.deepEqual(s.values, { shape: "1b", type: "q4_0", seed: 5 });
  const e = parseArgs(["eval", "m", "--text", "t.txt", "--sparsity", "0.5", "-n", "100", "--window", "64", "--json"]);
  assert.ok(e.kind === "command");
  assert.deepEqual(e.values, { text: "t.txt", sparsity: 0.5, maxTokens: 100, window: 64, json: true });
  assert.deepEqual(parseArgs(["verify", "--help"]), { kind: "help", command: "verify" });
});

test("help: the new commands' usage lines and what they say about flash mode", () => {
  assert.match(helpText("convert"), /^Usage: activeflow convert <in\.gguf> <out> \[options\]\n/);
  assert.match(helpText("convert"), /--column-type <type> +Store every column in this type \(f32, f16, q4_0, q4_1, q8_0, q4_k, q5_k, q6_k, bf16\)/);
  assert.match(helpText("calibrate"), /wiki\.test\.raw\) is refused/);
  assert.match(helpText("eval"), /activeflow calibrate <model>/);
  assert.match(helpText("synth"), /--shape <name> +Model shape: tiny, small, 1b, llama2-7b, llama3-8b, tiny-moe, moe-2b, mixtral-8x7b, qwen3-30b-a3b, olmoe-1b-7b, mixtral-8x7b-8l\./);
  assert.match(helpText("verify"), /^Usage: activeflow verify <converted file>\n/);
  assert.match(helpText("run"), /--dram <size> +DRAM budget/);
  assert.match(helpText("run"), /rounded up to 64/);
  assert.match(helpText("chat"), /--verify-reads +Check every page/);
  for (const name of ["convert", "calibrate", "eval", "synth", "verify"]) assert.match(helpText(), new RegExp(`\n  ${name} +\\S`));
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
  assert.match(h.err(), /^stats: 3 prompt \+ 3 generated tokens \| prefill 300\.0 tok\/s \| decode 100\.0 tok\/s \| peak RSS 123\.0 MiB \| fake, 1 thread \| stop: length \| seed 9\n$/);
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
  for (const k of ["tokens", "text", "prefill_tokens_per_s", "decode_tokens_per_s", "rss_peak_bytes", "model_bytes", "prompt_tokens", "generated_tokens", "isa", "threads", "stop_reason"]) {
    assert.ok(k in j, `JSON lacks ${k}`);
  }
  assert.ok(!("peak_rss_bytes" in j), "renamed in schema 2");
  assert.ok(!("runtime_floor_bytes" in j), "a stand-in engine that measured no floor gets no floor field");
  assert.equal(j.schema, 2);
  assert.deepEqual(j.tokens, [100, 101]);
  assert.equal(j.text, "Hello,");
  assert.equal(j.seed, null);
  assert.equal(h.calls[0]!.options.greedy, true);
  assert.match(h.err(), /^stats: /);
});

test("main: the runtime floor is reported apart from the model's memory, against the budget when there is one", async () => {
  const floor = 50 * 1024 * 1024;
  // Dense: no budget to compare with.
  const d = harness({ floor });
  assert.equal(await main(["run", ANY_FILE, "-p", "x", "--greedy"], d.ctx), 0);
  assert.match(d.err(), /\nmemory: model 73\.0 MiB; runtime floor 50\.0 MiB \(Node and the addon, before the model was opened\); peak RSS 123\.0 MiB\n$/);
  const dj = harness({ floor });
  assert.equal(await main(["run", ANY_FILE, "-p", "x", "--greedy", "--json"], dj.ctx), 0);
  const j = JSON.parse(dj.out().trim()) as Record<string, unknown>;
  assert.equal(j.rss_peak_bytes, 123 * 1024 * 1024);
  assert.equal(j.runtime_floor_bytes, floor);
  assert.equal(j.model_memory_peak_bytes, 73 * 1024 * 1024);
  // Under a budget: within it, or over it by how much; the floor is outside it either way.
  const within = harness({ floor, flash: { ...FLASH_STATS, dramBudgetBytes: 80 * 1024 * 1024 } });
  assert.equal(await main(["run", ANY_FILE, "-p", "x", "--greedy", "--dram", "80MB", "--ctx", "64"], within.ctx), 0, within.err());
  assert.match(within.err(), /\nmemory: model 73\.0 MiB within budget 80\.0 MiB; runtime floor 50\.0 MiB \(Node and the addon, before the model was opened\) outside it; peak RSS 123\.0 MiB\nflash: /);
  const over = harness({ floor, flash: FLASH_STATS });
  assert.equal(await main(["run", ANY_FILE, "-p", "x", "--greedy", "--dram", "8MB", "--ctx", "64", "--json"], over.ctx), 0, over.err());
  assert.match(over.err(), /\nmemory: model 73\.0 MiB over by 65\.4 MiB, budget 7\.6 MiB; runtime floor 50\.0 MiB .* outside it; peak RSS 123\.0 MiB\n/);
  const oj = JSON.parse(over.out().trim()) as Record<string, unknown>;
  assert.deepEqual([oj.dram_budget_bytes, oj.rss_peak_bytes, oj.runtime_floor_bytes], [FLASH_STATS.dramBudgetBytes, 123 * 1024 * 1024, floor]);
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

// ---- flash options through main() (fake engine, real tokenizer of a tiny GGUF) ----

const FLASH_STATS: FlashRunStats = {
  dramBudgetBytes: 8_000_000, weightResidentBytesPeak: 5_000_000, kvBytes: 65_536, scratchBytes: 40_000, cacheBytes: 3_000_000,
  headResident: true, sparsity: 0.5, flashBytesRead: 1_234_567, flashReads: 12, meanReadBytes: 102_880.6, cacheHitRate: 0.75,
  activeFraction: { q: 0.5, k: 0.5, v: 0.5, o: 0.45, gate: 0.51, up: 0.51, down: 0.48 }, ioWaitSeconds: 0.01, computeSeconds: 0.02,
  cacheHitRateBySite: { attn_in: 0.5, attn_out: 1, ffn_in: 0.25, ffn_out: null },
  planner: { merge: "cost", readGapBytes: null, cachePolicy: "lfu", cacheSplit: "read-cost", predictedTokensPerSecond: 3.5 },
};

let tinyDir: string | undefined;
async function tinyGguf(): Promise<string> {
  tinyDir ??= await mkdtemp(join(tmpdir(), "af-cli-"));
  const path = join(tinyDir, "tiny.gguf");
  if (!existsSync(path)) await buildTinyModel(path);
  return path;
}
after(async () => {
  if (tinyDir !== undefined) await rm(tinyDir, { recursive: true, force: true });
});

test("main: run --dram passes the flash options and sizes the context to prompt + -n, rounded up to 64", async () => {
  const model = await tinyGguf();
  const { readGguf } = await import("../src/gguf/reader.js");
  const { createTokenizer } = await import("../src/tokenizer/index.js");
  const file = await readGguf(model);
  const tok = createTokenizer(file);
  const trained = Number(file.metadata.get("llama.context_length"));
  // The CLI passes a sizer the engine calls with the tokenizer it builds (one header parse).
  const ctxOf = (o: LoadOptions) => (typeof o.contextLength === "function" ? o.contextLength(tok, trained) : o.contextLength);
  const prompt = "hello world, the world is here. ".repeat(4);
  const promptTokens = tok.encode(prompt, { addSpecial: true }).length;
  const h = harness();
  assert.equal(await main(["run", model, "-p", prompt, "-n", "40", "--dram", "35%", "--sparsity", "0.5", "--group-size", "2", "--verify-reads", "--greedy"], h.ctx), 0, h.err());
  const o = h.loads[0]!.options as LoadOptions;
  assert.deepEqual(o.dram, { kind: "percent", percent: 35, text: "35%" }); // parsed once by the CLI, resolved by the engine
  assert.equal(o.sparsity, 0.5);
  assert.equal(o.groupSize, 2);
  assert.equal(o.verifyReads, true);
  assert.equal(ctxOf(o), Math.ceil((promptTokens + 40) / 64) * 64);
  assert.ok(ctxOf(o)! % 64 === 0 && ctxOf(o)! >= promptTokens + 40);
  // --ctx wins; without --dram the context is left to the engine.
  const c = harness();
  assert.equal(await main(["run", model, "-p", prompt, "--dram", "1GB", "--ctx", "300"], c.ctx), 0, c.err());
  assert.equal(ctxOf(c.loads[0]!.options as LoadOptions), 300);
  const d = harness();
  assert.equal(await main(["run", model, "-p", prompt], d.ctx), 0, d.err());
  assert.equal(ctxOf(d.loads[0]!.options as LoadOptions), undefined);
  // chat -p: the rendered template's tokens count; an interactive chat gets a fixed 512.
  const t = harness();
  assert.equal(await main(["chat", model, "-p", "hi", "-n", "10", "--dram", "1GB"], t.ctx), 0, t.err());
  const chatTokens = tok.encode(tok.applyChatTemplate([{ role: "user", content: "hi" }], { addGenerationPrompt: true }), { addSpecial: false, parseSpecial: true }).length;
  assert.equal(ctxOf(t.loads[0]!.options as LoadOptions), Math.ceil((chatTokens + 10) / 64) * 64);
  const r = harness({ stdin: "/exit\n" });
  assert.equal(await main(["chat", model, "--dram", "1GB"], r.ctx), 0, r.err());
  assert.equal(ctxOf(r.loads[0]!.options as LoadOptions), 512);
});

test("main: --ctx above the model's trained context runs with a warning (as llama.cpp); at or below it, silently", async () => {
  const model = await tinyGguf(); // trained context 256 (buildTinyModel's default)
  const above = await runCli(["run", model, "-p", "hi", "-n", "2", "--greedy", "--ctx", "300"]);
  assert.equal(above.code, 0, above.err);
  assert.match(above.err, /^warning: --ctx 300 is above the model's trained context of 256 tokens; it is used as given, but the model never saw positions past 256 in training and its output usually degrades there\n/);
  const chat = await runCli(["chat", model, "-p", "hi", "-n", "2", "--greedy", "--ctx", "257"]);
  assert.equal(chat.code, 0, chat.err);
  assert.match(chat.err, /^warning: --ctx 257 is above the model's trained context of 256 tokens/);
  for (const argv of [["--ctx", "256"], []]) {
    const r = await runCli(["run", model, "-p", "hi", "-n", "2", "--greedy", ...argv]);
    assert.equal(r.code, 0, r.err);
    assert.doesNotMatch(r.err, /warning/, argv.join(" "));
  }
  assert.match(helpText("run"), /Above the trained context it is used as given with a warning, as llama\.cpp does/);
});

test("main: run --json in flash mode adds the budget, I/O and sparsity fields; stats gain a flash line", async () => {
  const h = harness({ flash: FLASH_STATS });
  assert.equal(await main(["run", ANY_FILE, "-p", "x", "-n", "2", "--greedy", "--json", "--dram", "8MB", "--ctx", "64"], h.ctx), 0, h.err());
  const j = JSON.parse(h.out().trim()) as Record<string, unknown>;
  assert.deepEqual(
    Object.fromEntries(Object.entries(j).filter(([k]) => [
      "dram_budget_bytes", "weight_resident_bytes_peak", "flash_bytes_read", "flash_reads", "mean_read_bytes", "cache_hit_rate",
      "active_fraction", "io_wait_s", "compute_s", "sparsity", "kv_bytes", "cache_bytes", "head_resident",
    ].includes(k))),
    {
      dram_budget_bytes: 8_000_000, weight_resident_bytes_peak: 5_000_000, flash_bytes_read: 1_234_567, flash_reads: 12,
      mean_read_bytes: 102_880.6, cache_hit_rate: 0.75, active_fraction: { q: 0.5, k: 0.5, v: 0.5, o: 0.45, gate: 0.51, up: 0.51, down: 0.48 },
      io_wait_s: 0.01, compute_s: 0.02, sparsity: 0.5, kv_bytes: 65_536, cache_bytes: 3_000_000, head_resident: true,
    },
  );
  assert.deepEqual(j.cache_hit_rate_by_site, { attn_in: 0.5, attn_out: 1, ffn_in: 0.25, ffn_out: null });
  assert.deepEqual(j.planner, { merge: "cost", read_gap_bytes: null, cache_policy: "lfu", cache_split: "read-cost", predicted_tokens_per_s: 3.5 });
  assert.match(h.err(), /\nflash: budget 7\.6 MiB \(weights peak 4\.8, cache 2\.9, KV 0\.06, head resident\) \| sparsity 0\.5 \| read 1\.2 MiB in 12 reads/);
  assert.equal(j.scratch_bytes, 40_000);
  assert.ok(!("engine_bytes" in j), "stats without the engine's share have no engine_bytes");
  // The engine's own memory the plan charged: engine_bytes and `engine` in the budget's parts.
  const e = harness({ flash: { ...FLASH_STATS, engineBytes: 3_145_728 } });
  assert.equal(await main(["run", ANY_FILE, "-p", "x", "-n", "2", "--greedy", "--json", "--dram", "8MB", "--ctx", "64"], e.ctx), 0, e.err());
  assert.equal((JSON.parse(e.out().trim()) as Record<string, unknown>).engine_bytes, 3_145_728);
  assert.match(e.err(), /\nflash: budget 7\.6 MiB \(weights peak 4\.8, cache 2\.9, KV 0\.06, engine 3\.0, head resident\) \| /);
  // Dense runs keep the old record.
  const d = harness();
  assert.equal(await main(["run", ANY_FILE, "-p", "x", "--greedy", "--json"], d.ctx), 0);
  assert.ok(!("dram_budget_bytes" in (JSON.parse(d.out().trim()) as object)));
});

test("main: engine load errors (budget too small, missing calibration) are one line, exit 1", async () => {
  for (const [code, message] of [
    ["BUDGET_TOO_SMALL", "a DRAM budget of 1.0 MiB is below this model's minimum of 7.2 MiB (staging 2.8 MiB, KV cache 128.0 KiB for 64 tokens)"],
    ["BAD_ARGUMENT", "/m.gguf: sparsity 0.5 needs thresholds, and the model has no calibration; run `activeflow calibrate /m.gguf` first"],
  ] as const) {
    const h = harness();
    h.ctx.loadEngine = async () => {
      throw new ActiveflowError(code, message);
    };
    assert.equal(await main(["run", ANY_FILE, "-p", "x", "--dram", "1MB", "--ctx", "64", "--sparsity", "0.5"], h.ctx), 1);
    assert.equal(h.err(), `error: ${message}\n`);
  }
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
  const j = JSON.parse(lines[lines.length - 1]!) as {
    tokens: number[]; text: string; generated_tokens: number; model_bytes: number; stop_reason: string;
    rss_peak_bytes: number; runtime_floor_bytes: number; model_memory_peak_bytes: number;
  };
  assert.equal(j.tokens.length, j.generated_tokens);
  assert.ok(j.generated_tokens >= 1 && j.generated_tokens <= 6);
  assert.equal(j.model_bytes, SMOLLM2.file.size);
  // The floor (Node and the addon) is measured before the model is opened: the dense model's
  // weights, all read once, sit above it.
  const MiB = 1024 * 1024;
  assert.ok(j.runtime_floor_bytes > 16 * MiB && j.runtime_floor_bytes < j.rss_peak_bytes, `floor ${j.runtime_floor_bytes}, peak ${j.rss_peak_bytes}`);
  assert.equal(j.model_memory_peak_bytes, j.rss_peak_bytes - j.runtime_floor_bytes);
  assert.ok(j.model_memory_peak_bytes > j.model_bytes / 2, `model memory ${j.model_memory_peak_bytes} for a ${j.model_bytes}-byte file`);
  assert.match(r.stderr, /stats: \d+ prompt \+ \d+ generated tokens/);
  const human = runBin(["run", model, "-p", "The capital of France is", "-n", "2", "--greedy"]);
  assert.match(human.stderr, /\nmemory: model \d+\.\d MiB; runtime floor \d+\.\d MiB \(Node and the addon, before the model was opened\); peak RSS \d+\.\d MiB\n/);
});
