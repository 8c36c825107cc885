// Chat and CLI conveniences (issue 15, item 4): stop strings, context shift and prefix reuse in
// the engine (a tiny real model), multi-line input and slash commands in `chat`, prompts from
// a file or standard input, and the tokenize and inspect commands.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { main } from "../src/cli/main.js";
import { helpText, parseArgs } from "../src/cli/args.js";
import type { CliContext, EngineLike } from "../src/cli/commands/context.js";
import { LineJoiner, PASTE_JOIN_MS, type Timers } from "../src/cli/commands/chatInput.js";
import { Engine } from "../src/index.js";
import { StopMatcher } from "../src/engine/stopStrings.js";
import { fitConversation } from "../src/engine/contextShift.js";
import type { GeneratedToken, GenerateOptions, GenerationStats } from "../src/engine/types.js";
import { ActiveflowError } from "../src/errors.js";
import { GgmlType } from "../src/gguf/types.js";
import { readGguf } from "../src/gguf/reader.js";
import { buildTinyModel } from "../src/synth/tinyModel.js";
import { createTokenizer } from "../src/tokenizer/index.js";
import type { ChatMessage } from "../src/tokenizer/types.js";
import { runCli, useTempCache } from "./helpers/cli.js";

let dir = "";
let tiny = "";
useTempCache("af-chat-cli-", async (d) => {
  dir = d;
  tiny = join(dir, "tiny.gguf");
  await buildTinyModel(tiny, { type: GgmlType.Q8_0, contextLength: 1024, seed: 5 });
});

// ---- stop strings ----

test("StopMatcher holds back a possible stop string across pieces and never emits it", () => {
  const m = new StopMatcher(["</end>", "STOP"]);
  assert.deepEqual(m.push("Hello </"), { emit: "Hello ", stopped: false });
  assert.deepEqual(m.push("e"), { emit: "", stopped: false });
  assert.deepEqual(m.push("x"), { emit: "</ex", stopped: false }, "not a stop string after all: released");
  assert.deepEqual(m.push(" ST"), { emit: " ", stopped: false });
  assert.deepEqual(m.push("OP and more"), { emit: "", stopped: true });
  const n = new StopMatcher(["ab"]);
  assert.deepEqual(n.push("xa"), { emit: "x", stopped: false });
  assert.equal(n.flush(), "a", "held text comes back when the generation ends otherwise");
  assert.deepEqual(new StopMatcher([]).push("anything"), { emit: "anything", stopped: false });
  assert.throws(() => new StopMatcher([""]), /stop strings must be non-empty strings, got ""/);
});

async function drain(gen: AsyncGenerator<GeneratedToken, GenerationStats, void>): Promise<{ items: GeneratedToken[]; text: string; stats: GenerationStats }> {
  const items: GeneratedToken[] = [];
  for (;;) {
    const r = await gen.next();
    if (r.done === true) return { items, text: items.map((t) => t.text).join(""), stats: r.value };
    items.push(r.value);
  }
}

test("generate with stop: ends at a stop string spanning two tokens, which is not in the text", async () => {
  const e = await Engine.load(tiny, { threads: 1, contextLength: 256 });
  try {
    const free = await drain(e.generate("the cat sat on", { greedy: true, maxTokens: 40, stopAtEos: false }));
    // A stop string made of the last character of one token and the first of the next.
    let at = 0, stop: string | undefined;
    for (let i = 0; i + 1 < free.items.length && stop === undefined; i++) {
      at += free.items[i]!.text.length;
      if (free.items[i]!.text.length > 0 && free.items[i + 1]!.text.length > 0 && i >= 3) stop = free.text.slice(at - 1, at + 1);
    }
    assert.ok(stop !== undefined && stop.length === 2, `no token boundary in ${JSON.stringify(free.text)}`);
    const stopped = await drain(e.generate("the cat sat on", { greedy: true, maxTokens: 40, stopAtEos: false, stop: [stop] }));
    assert.equal(stopped.stats.stopReason, "stop");
    assert.equal(stopped.text, free.text.slice(0, free.text.indexOf(stop)));
    assert.ok(!stopped.text.includes(stop));
    // A stop string that never appears changes nothing.
    const none = await drain(e.generate("the cat sat on", { greedy: true, maxTokens: 40, stopAtEos: false, stop: ["\u0000never"] }));
    assert.equal(none.text, free.text);
    assert.equal(none.stats.stopReason, "length");
  } finally {
    await e.dispose();
  }
});

// ---- context shift and prefix reuse ----

test("fitConversation keeps the system message and drops the oldest whole turns", () => {
  const render = (m: readonly ChatMessage[]) => m.flatMap((x) => new Array<number>(x.content.length + 2).fill(1));
  const msgs: ChatMessage[] = [{ role: "system", content: "s".repeat(8) }];
  for (let i = 0; i < 6; i++) msgs.push({ role: "user", content: "u".repeat(10) }, { role: "assistant", content: "a".repeat(18) });
  msgs.push({ role: "user", content: "q".repeat(10) });
  const fit = fitConversation(msgs, render, 200, 32);
  assert.equal(fit.messages[0]!.role, "system");
  assert.equal(fit.messages[1]!.role, "user", "a turn starts with its user message");
  assert.ok(fit.ids.length <= 100, "a shift leaves at most half the context");
  assert.equal(fit.droppedMessages % 2, 0);
  assert.deepEqual(fit.messages.slice(1), msgs.slice(1 + fit.droppedMessages));
  assert.equal(fit.droppedTokens, render(msgs).length - fit.ids.length);
  // The newest turn alone misses the reserve but fits the context: it runs, with a shorter reply.
  const big: ChatMessage[] = [...msgs, { role: "user", content: "y".repeat(180) }];
  const tight = fitConversation(big, render, 200, 32);
  assert.deepEqual(tight.messages, [msgs[0], big.at(-1)]);
  assert.equal(tight.ids.length, 192);
  // Fits: untouched.
  assert.equal(fitConversation(msgs.slice(0, 3), render, 200, 32).droppedMessages, 0);
  // The newest message alone is too long: a clear error, not a silent cut.
  assert.throws(
    () => fitConversation([...msgs, { role: "user", content: "x".repeat(300) }], render, 200, 32),
    /the last message needs 312 tokens with the system prompt, and the context holds 200; use a larger --ctx or a shorter message/,
  );
});

function lcp(a: readonly number[], b: readonly number[]): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}

test("a 40-turn chat at ctx 512 never errors; each turn prefills only the tokens the cache lacks", async () => {
  const e = await Engine.load(tiny, { threads: 1, contextLength: 512 });
  const tok = e.tokenizer;
  const render = (m: readonly ChatMessage[]) => tok.encode(tok.applyChatTemplate(m, { addGenerationPrompt: true }), { addSpecial: false, parseSpecial: true });
  const messages: ChatMessage[] = [{ role: "system", content: "You are a terse assistant." }];
  let cache: number[] = []; // what the engine's KV cache should hold
  let shifts = 0, prefilled = 0, prompted = 0;
  try {
    for (let turn = 0; turn < 40; turn++) {
      messages.push({ role: "user", content: `turn ${turn}: tell me about the cat and the hat and the sea` });
      const r = await drain(e.chat(messages, { seed: turn, maxTokens: 24, stop: ["hat sat"] }));
      const s = r.stats;
      const shift = s.contextShift;
      const sent = shift ? [messages[0]!, ...messages.slice(1 + shift.droppedMessages)] : messages;
      const ids = render(sent);
      assert.equal(s.promptTokens, ids.length, `turn ${turn}`);
      assert.ok(s.promptTokens + s.generatedTokens <= 512, `turn ${turn} stays inside the context`);
      assert.equal(s.prefillTokens + s.reusedTokens, s.promptTokens);
      let expectReuse = lcp(ids, cache);
      if (expectReuse === ids.length) expectReuse--;
      assert.equal(s.reusedTokens, expectReuse, `turn ${turn}: reused what the cache held`);
      if (turn > 0) assert.ok(s.reusedTokens > 0, `turn ${turn}: the shared prefix (at least the system prompt) is reused`);
      // The cache now holds the prompt and every generated token that was fed back.
      const fed = r.items.filter((t) => t.id >= 0).map((t) => t.id);
      if (s.stopReason === "length" || s.stopReason === "stop") fed.pop();
      cache = [...ids, ...fed];
      messages.push({ role: "assistant", content: r.text });
      if (shift) {
        shifts++;
        messages.splice(1, shift.droppedMessages);
      }
      prefilled += s.prefillTokens;
      prompted += s.promptTokens;
    }
  } finally {
    await e.dispose();
  }
  assert.ok(shifts >= 2, `the history filled the context and shifted (${shifts} shifts)`);
  assert.ok(prefilled < prompted / 2, `prefix reuse: ${prefilled} of ${prompted} prompt tokens evaluated`);
});

test("chat with contextShift false refuses a conversation that does not fit", async () => {
  const e = await Engine.load(tiny, { threads: 1, contextLength: 64 });
  try {
    const long: ChatMessage[] = [{ role: "user", content: "the cat and the hat ".repeat(20) }];
    await assert.rejects(drain(e.chat(long, { contextShift: false, maxTokens: 4 })), /CONTEXT_FULL|context holds 64/);
    await assert.rejects(drain(e.chat(long, { maxTokens: 4 })), /the last message needs \d+ tokens with the system prompt, and the context holds 64/);
  } finally {
    await e.dispose();
  }
});

// ---- chat input: pastes and continuation lines ----

function fakeTimers(): Timers & { fire: () => void } {
  let pending: (() => void) | undefined;
  return {
    set: (fn) => ((pending = fn), 1),
    clear: () => (pending = undefined),
    fire: () => {
      const f = pending;
      pending = undefined;
      f?.();
    },
  };
}

test("LineJoiner: lines inside the paste window are one message; a trailing backslash continues", () => {
  const got: string[] = [];
  const timers = fakeTimers();
  const j = new LineJoiner(30, (m) => got.push(m), timers);
  j.line("first line of a paste");
  j.line("second line");
  assert.deepEqual(got, [], "waits for the window to pass");
  timers.fire();
  assert.deepEqual(got, ["first line of a paste\nsecond line"]);
  j.line("typed \\");
  assert.equal(j.waitingForMore, true);
  timers.fire(); // no timer runs while a backslash waits
  assert.equal(got.length, 1);
  j.line("and continued");
  timers.fire();
  assert.deepEqual(got[1], "typed \nand continued");
  j.line("unfinished \\");
  j.end();
  assert.deepEqual(got[2], "unfinished ");
  const piped: string[] = [];
  const p = new LineJoiner(0, (m) => piped.push(m));
  p.line("a");
  p.line("b\\");
  p.line("c");
  assert.deepEqual(piped, ["a", "b\nc"]);
});

// ---- chat commands through main() with a scripted engine ----

interface Harness {
  ctx: CliContext;
  out: () => string;
  err: () => string;
  calls: { kind: "generate" | "chat"; input: string | ChatMessage[]; options: GenerateOptions }[];
  budgets: (string | number)[];
}

function harness(stdin: string, opts: { shiftOnTurn?: number; withBudget?: boolean } = {}): Harness {
  let out = "", err = "";
  const h: Harness = { out: () => out, err: () => err, calls: [], budgets: [], ctx: undefined as unknown as CliContext };
  let turns = 0;
  async function* gen(shift: GenerationStats["contextShift"]): AsyncGenerator<GeneratedToken, GenerationStats, void> {
    yield { id: 7, text: "ok" };
    const s: GenerationStats = {
      promptTokens: 40, prefillTokens: 6, reusedTokens: 34, generatedTokens: 1, prefillSeconds: 0.01, decodeSeconds: 0.01,
      prefillTokensPerSecond: 600, decodeTokensPerSecond: 100, peakRssBytes: 1 << 20, modelBytes: 100, threads: 1, isa: "fake", stopReason: "eos",
    };
    if (shift) s.contextShift = shift;
    return s;
  }
  const engine: EngineLike = {
    modelBytes: 100,
    contextLength: 512,
    generate(prompt, options = {}) {
      h.calls.push({ kind: "generate", input: prompt, options });
      return gen(undefined);
    },
    chat(messages, options = {}) {
      h.calls.push({ kind: "chat", input: messages.map((m) => ({ ...m })), options });
      return gen(++turns === opts.shiftOnTurn ? { droppedMessages: 2, droppedTokens: 30 } : undefined);
    },
    async dispose() {},
    ...(opts.withBudget
      ? {
          setDramBudget: (b: string | number) => {
            if (b === "1KB") throw new ActiveflowError("BAD_ARGUMENT", "a budget of 1024 bytes is below the model's minimum of 5.0 MiB");
            h.budgets.push(b);
            return 8 * 1024 * 1024;
          },
        }
      : {}),
  };
  const input = new PassThrough();
  input.end(stdin);
  const sink = (append: (s: string) => void) => ({ write: (s: string) => (append(s), true) }) as unknown as CliContext["stdout"];
  h.ctx = {
    stdin: input, stdout: sink((s) => (out += s)), stderr: sink((s) => (err += s)), env: { ...process.env },
    loadEngine: async () => engine, onInterrupt: () => () => {},
  };
  return h;
}

test("chat: /help, /stats, /budget and unknown commands stay in the CLI; // sends a leading slash", async () => {
  const h = harness("/help\nhello\n/stats\n/budget 50%\n/frobnicate\n//etc/hosts is a file\n/exit\n");
  assert.equal(await main(["chat", tiny, "-n", "4"], h.ctx), 0, h.err());
  const inputs = h.calls.map((c) => c.input as ChatMessage[]);
  assert.equal(inputs.length, 2, "only real messages reach the model");
  assert.deepEqual(inputs[1]!.at(-1), { role: "user", content: "/etc/hosts is a file" });
  assert.match(h.err(), /\/reset +forget the conversation/);
  assert.match(h.err(), /session: 1 turns, 2 messages kept, 6 tokens prefilled \(34 reused from the cache\), 1 generated, 0 context shifts; the last turn used 41 tokens of a 512-token context/);
  assert.match(h.err(), /prefill 6 new tokens \(34 reused from the cache\)/);
  assert.match(h.err(), /error: \/budget needs a model run under a DRAM budget \(start the chat with --dram\)/);
  assert.match(h.err(), /unknown command \/frobnicate; \/help lists the commands/);
});

test("chat: /budget changes the budget of a budgeted engine and names a refused value", async () => {
  const h = harness("/budget\n/budget 1KB\n/budget 30%\n", { withBudget: true });
  // --dram needs the tiny model's tokenizer for the context default; the engine is scripted.
  assert.equal(await main(["chat", tiny, "--dram", "1GB"], h.ctx), 0, h.err());
  assert.deepEqual(h.budgets, ["30%"]);
  assert.match(h.err(), /error: \/budget needs a size/);
  assert.match(h.err(), /error: \/budget 1KB: a budget of 1024 bytes is below/);
  assert.match(h.err(), /DRAM budget 8\.0 MiB from the next token on/);
});

test("chat: a backslash joins lines into one message; a context shift drops the same turns from the history", async () => {
  const h = harness("first \\\nsecond\nthird\nfourth\n", { shiftOnTurn: 2 });
  assert.equal(await main(["chat", tiny, "--system", "sys", "--stop", "User:", "--stop", "###"], h.ctx), 0, h.err());
  const inputs = h.calls.map((c) => c.input as ChatMessage[]);
  assert.equal(inputs.length, 3);
  assert.deepEqual(inputs[0], [{ role: "system", content: "sys" }, { role: "user", content: "first \nsecond" }]);
  // Turn 2 reported that the first turn (2 messages) was dropped: turn 3 no longer sends it.
  assert.deepEqual(inputs[2], [
    { role: "system", content: "sys" },
    { role: "user", content: "third" },
    { role: "assistant", content: "ok" },
    { role: "user", content: "fourth" },
  ]);
  assert.match(h.err(), /context full: dropped the 2 oldest messages \(30 tokens\)/);
  assert.deepEqual(h.calls[0]!.options.stop, ["User:", "###"]);
});

test("chat on a terminal: a multi-line paste (\\n or \\r line ends) is one turn; a line typed later is the next", async () => {
  for (const eol of ["\n", "\r"]) {
    const h = harness("");
    // readline in terminal mode, as with a real TTY; a paste arrives as one chunk.
    const tty = Object.assign(new PassThrough(), { isTTY: true });
    h.ctx.stdin = tty;
    // readline on a terminal writes its prompt and echo to a real stream (it listens on it).
    const screen = new PassThrough();
    screen.resume();
    h.ctx.stdout = screen;
    const done = main(["chat", tiny, "-n", "4"], h.ctx);
    const pause = () => new Promise((r) => setTimeout(r, PASTE_JOIN_MS * 6));
    tty.write(["def f(x):", "    return x + 1", "", "What does f do?"].join(eol) + eol);
    await pause();
    tty.write(`thanks${eol}`);
    await pause();
    tty.end();
    assert.equal(await done, 0, h.err());
    const inputs = h.calls.map((c) => c.input as ChatMessage[]);
    assert.equal(inputs.length, 2, `${JSON.stringify(eol)}: one turn for the paste, one for the typed line`);
    assert.deepEqual(inputs[0], [{ role: "user", content: "def f(x):\n    return x + 1\n\nWhat does f do?" }]);
    assert.deepEqual(inputs[1]!.at(-1), { role: "user", content: "thanks" });
  }
});

test("chat from a pipe: each line is a message unless it ends in a backslash (a pasted block needs them)", async () => {
  const joined = harness("def f(x):\\\n    return x + 1\\\nWhat does f do?\n");
  assert.equal(await main(["chat", tiny, "-n", "4"], joined.ctx), 0, joined.err());
  assert.deepEqual(joined.calls.map((c) => (c.input as ChatMessage[]).at(-1)!.content), ["def f(x):\n    return x + 1\nWhat does f do?"]);
  const lines = harness("first\nsecond\n");
  assert.equal(await main(["chat", tiny, "-n", "4"], lines.ctx), 0, lines.err());
  assert.equal(lines.calls.length, 2);
  assert.match(helpText("chat"), /From a pipe\s+each line is a message unless it ends in a backslash/);
});

// ---- run: -f, -f -, and - ----

test("run reads the prompt from -f <file>, -f - and a bare -; bad values are named", async () => {
  const file = join(dir, "prompt.txt");
  await writeFile(file, "Once upon a time\nthere was");
  const a = harness("");
  assert.equal(await main(["run", tiny, "-f", file, "-n", "2", "--stop", "x"], a.ctx), 0, a.err());
  assert.equal(a.calls[0]!.input, "Once upon a time\nthere was");
  assert.deepEqual(a.calls[0]!.options.stop, ["x"]);
  const b = harness("from stdin\n");
  assert.equal(await main(["run", tiny, "-f", "-", "-n", "2"], b.ctx), 0, b.err());
  assert.equal(b.calls[0]!.input, "from stdin\n");
  const c = harness("bare dash");
  assert.equal(await main(["run", tiny, "-", "-n", "2"], c.ctx), 0, c.err());
  assert.equal(c.calls[0]!.input, "bare dash");

  const missing = harness("");
  assert.equal(await main(["run", tiny, "-f", join(dir, "nope.txt")], missing.ctx), 1);
  assert.match(missing.err(), /^error: cannot read the prompt file ".*nope\.txt": no such file\n$/);
  const empty = harness("");
  assert.equal(await main(["run", tiny, "-"], empty.ctx), 1);
  assert.match(empty.err(), /^error: the prompt from standard input is empty\n$/);
  for (const [argv, re] of [
    [["run", "m", "-p", "x", "-f", "y"], /give the prompt once: -p and -f y both given/],
    [["run", "m", "-f", "y", "-"], /give the prompt once: -f y and - both given/],
    [["run", "m", "-f", ""], /invalid value for -f: "" \(expected a file name, or - for standard input\)/],
    [["run", "m", "-p", "x", "--stop", ""], /invalid value for --stop: "" \(expected a non-empty string\)/],
    [["run", "m"], /run needs a prompt: -p <text>, -f <file>, or - for standard input/],
    [["chat", "m", "-f", "x"], /option -f does not apply to chat/],
  ] as const) {
    assert.throws(() => parseArgs(argv), re);
  }
  const p = parseArgs(["run", "m", "-p", "x", "--stop", "a", "--stop=b"]);
  assert.ok(p.kind === "command" && JSON.stringify(p.values.stop) === '["a","b"]');
});

// ---- tokenize and inspect ----

const cli = (argv: string[], stdin = "") => runCli(argv, { stdin });

test("tokenize prints ids and pieces as run encodes them; --json; - reads stdin", async () => {
  const tok = createTokenizer(await readGguf(tiny));
  const text = "the cat sat on the hat";
  const ids = tok.encode(text, { addSpecial: true });
  const j = await cli(["tokenize", tiny, text, "--json"]);
  assert.equal(j.code, 0, j.err);
  const rec = JSON.parse(j.out) as { ids: number[]; pieces: string[]; tokens: number };
  assert.deepEqual(rec.ids, ids);
  assert.equal(rec.tokens, ids.length);
  assert.equal(rec.pieces.join(""), text);
  const plain = await cli(["tokenize", tiny, text]);
  assert.equal(plain.out.trim().split("\n").length, ids.length);
  assert.match(plain.out, new RegExp(`^ *${ids[0]} ${JSON.stringify(rec.pieces[0]).replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\n`));
  assert.match(plain.err, new RegExp(`^${ids.length} tokens\n$`));
  const fromStdin = await cli(["tokenize", tiny, "-", "--json"], text);
  assert.deepEqual((JSON.parse(fromStdin.out) as { ids: number[] }).ids, ids);
  const missing = await cli(["tokenize", tiny]);
  assert.equal(missing.code, 2);
  assert.match(missing.err, /missing <text>: usage: activeflow tokenize <model> <text>/);
});

test("inspect lists metadata, tensors and, for a flash file, the layout and calibration", async () => {
  const file = await readGguf(tiny);
  const j = await cli(["inspect", tiny, "--json"]);
  assert.equal(j.code, 0, j.err);
  const rec = JSON.parse(j.out) as {
    metadata: Record<string, unknown>; tensors: { name: string; type: string; shape: number[]; bytes: number }[]; flash: unknown; calibration: unknown;
  };
  assert.equal(rec.metadata["general.architecture"], "llama");
  const tokens = rec.metadata["tokenizer.ggml.tokens"] as { type: string; length: number; head: string[] };
  assert.equal(tokens.type, "string");
  assert.ok(tokens.length > 8 && tokens.head.length === 8, "long arrays are summarised");
  assert.deepEqual(rec.tensors.map((t) => [t.name, t.shape]), file.tensors.map((t) => [t.name, t.dims]));
  assert.equal(rec.tensors.find((t) => t.name === "blk.0.attn_q.weight")!.type, "q8_0");
  assert.equal(rec.flash, null);
  assert.equal(rec.calibration, null);
  const text = await cli(["inspect", tiny]);
  assert.match(text.out, /general\.architecture = "llama"/);
  assert.match(text.out, /blk\.0\.ffn_down\.weight +q8_0 +\d+ x \d+/);
  assert.match(text.out, /calibration: none/);

  const flash = join(dir, "tiny.af.gguf");
  assert.equal((await cli(["convert", tiny, flash, "--group-size", "2"])).code, 0);
  const cal = await cli(["calibrate", flash, "--method", "uniform", "--tokens", "64"]);
  assert.equal(cal.code, 0, cal.err);
  const f = await cli(["inspect", flash, "--json"]);
  assert.equal(f.code, 0, f.err);
  const fr = JSON.parse(f.out) as {
    flash: { group_size: number; groups: number; sites: { site: string; layout: string; column_type: string }[]; extents: { site: string; offset: number; record_bytes: number }[] };
    calibration: { levels: number[]; method: string; tokens: number };
  };
  assert.equal(fr.flash.group_size, 2);
  assert.equal(fr.flash.groups, 1);
  assert.deepEqual(fr.flash.sites.map((s) => s.site), ["attn_in", "attn_out", "ffn_in", "ffn_out"]);
  assert.ok(fr.flash.sites.every((s) => s.layout === "split" && s.column_type === "i8"), JSON.stringify(fr.flash.sites));
  assert.equal(fr.flash.extents.length, 4);
  assert.ok(fr.flash.extents.every((e) => e.offset % 4096 === 0 && e.record_bytes > 0));
  assert.equal(fr.calibration.method, "uniform");
  assert.equal((fr.calibration as { selection?: string }).selection, "magnitude", "the table's selection rule");
  assert.ok(fr.calibration.levels.includes(0.5));
  const ft = await cli(["inspect", flash]);
  assert.match(ft.out, /flash layout: version \d+, group size 2 \(1 groups\)/);
  assert.match(ft.out, /calibration: uniform on \d+ tokens/);
});
