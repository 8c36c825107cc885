// `activeflow chat <model>`: an interactive session (or one turn with -p) using the model's
// chat template. The conversation is kept and re-sent each turn; the engine reuses the KV
// cache for the shared prefix, so a turn prefills only its new tokens. When the conversation
// outgrows the context the engine drops the oldest turns, and the session forgets them too.
import { createInterface } from "node:readline";
import { isActiveflowError } from "../../errors.js";
import type { ChatMessage } from "../../tokenizer/types.js";
import type { OptionValues } from "../args.js";
import { statsLine, type GenerationResult } from "../output.js";
import { LineJoiner, MessageQueue, PASTE_JOIN_MS } from "./chatInput.js";
import type { CliContext, EngineLike } from "./context.js";
import { exitCodeFor, generateOptions, reportGeneration, streamGeneration } from "./generate.js";
import { engineLoadOptions, resolveModelPath, warnAboveTrainedContext } from "./model.js";
import { MiB } from "./table.js";
import { readJsonSchema } from "./jsonSchema.js";

export async function chatCommand(ctx: CliContext, model: string, values: OptionValues): Promise<number> {
  if (values.jsonSchema !== undefined) values.schema = await readJsonSchema(values.jsonSchema);
  const path = await resolveModelPath(model, ctx);
  const messages: ChatMessage[] = values.system !== undefined ? [{ role: "system", content: values.system }] : [];
  const first = values.prompt !== undefined ? { messages: [...messages, { role: "user" as const, content: values.prompt }] } : undefined;
  const load = await engineLoadOptions(ctx, path, values, first);
  if (values.watchMemory === true) load.options.watchMemory = { log: (line) => ctx.stderr.write(`${line}\n`) };
  let engine;
  try {
    engine = await ctx.loadEngine(path, load.options);
  } finally {
    load.done();
  }
  warnAboveTrainedContext(ctx, engine, values);
  try {
    if (values.prompt !== undefined) {
      messages.push({ role: "user", content: values.prompt });
      return exitCodeFor(await turn(ctx, engine, messages, values, 0, messages.length - 1));
    }
    return await repl(ctx, engine, messages, values);
  } finally {
    await engine.dispose();
  }
}

// One reply: streams it, appends it to `messages`, drops what a context shift dropped (the
// `base` messages before it, the system prompt, stay), prints stats.
async function turn(ctx: CliContext, engine: EngineLike, messages: ChatMessage[], values: OptionValues, index: number, base: number): Promise<GenerationResult> {
  const choice = generateOptions(values, index);
  const json = values.json === true;
  const result = await streamGeneration(ctx, (signal) => engine.chat(messages, { ...choice.options, signal }), choice, json);
  messages.push({ role: "assistant", content: result.text });
  const shift = result.stats.contextShift;
  if (shift) messages.splice(base, shift.droppedMessages);
  reportGeneration(ctx, result, json);
  return result;
}

const HELP = [
  "Commands (never sent to the model):",
  "  /help            this list",
  "  /reset           forget the conversation (the system message stays)",
  "  /stats           the last reply's numbers and the session's totals",
  "  /budget <size>   change the DRAM budget (bytes, 512MB, 35%); needs a model run with a budget",
  "  /exit, /quit     leave (Ctrl-D too)",
  "Lines pasted together are one message; end a line with \\ to continue on the next.",
  "Start a message with // to send it with a single leading /.",
].join("\n");

// What /stats reports beside the last reply.
interface Session {
  turns: number;
  prefilled: number;
  reused: number;
  generated: number;
  shifts: number;
  last: GenerationResult | undefined;
}

async function repl(ctx: CliContext, engine: EngineLike, messages: ChatMessage[], values: OptionValues): Promise<number> {
  const interactive = ctx.stdin.isTTY === true;
  const rl = createInterface({ input: ctx.stdin, ...(interactive ? { output: ctx.stdout, terminal: true } : { terminal: false }) });
  const base = messages.length; // the system message, if any, survives /reset and context shifts
  let generating = false;
  // On a terminal readline sees Ctrl-C as a key, not a signal: route it to the same abort
  // path as a real SIGINT while a reply runs, and quit at the prompt.
  const keyInterrupt = new Set<() => void>();
  const queue = new MessageQueue();
  rl.on("SIGINT", () => {
    if (generating) keyInterrupt.forEach((f) => f());
    else rl.close();
  });
  const turnCtx: CliContext = {
    ...ctx,
    onInterrupt: (handler) => {
      keyInterrupt.add(handler);
      const offSignal = ctx.onInterrupt(handler);
      return () => {
        keyInterrupt.delete(handler);
        offSignal();
      };
    },
  };
  const off = ctx.onInterrupt(() => {
    if (!generating) rl.close();
  });
  // Pastes arrive as quick lines only on a terminal; from a pipe every line is a message.
  const joiner = new LineJoiner(interactive ? PASTE_JOIN_MS : 0, (m) => queue.push(m));
  rl.on("line", (line) => {
    joiner.line(line);
    if (joiner.waitingForMore) {
      rl.setPrompt("... ");
      rl.prompt();
    }
  });
  rl.on("close", () => {
    joiner.end();
    queue.close();
  });
  if (interactive) ctx.stderr.write("Chat started. /help lists the commands; /exit or Ctrl-D quits, Ctrl-C stops a reply.\n");
  const session: Session = { turns: 0, prefilled: 0, reused: 0, generated: 0, shifts: 0, last: undefined };
  try {
    rl.setPrompt("> ");
    rl.prompt();
    for (;;) {
      const raw = await queue.next();
      if (raw === undefined) break;
      const text = raw.trim();
      const command = /^\/[a-z]/i.test(text) && !text.includes("\n") ? text : undefined;
      if (command !== undefined) {
        const [name, ...rest] = command.split(/\s+/);
        if (name === "/exit" || name === "/quit") break;
        slashCommand(ctx, engine, name!, rest.join(" "), messages, base, session, values.dram !== undefined);
      } else if (text !== "") {
        messages.push({ role: "user", content: text.startsWith("//") ? text.slice(1) : text });
        generating = true;
        try {
          const r = await turn(turnCtx, engine, messages, values, session.turns++, base);
          session.last = r;
          session.prefilled += r.stats.prefillTokens;
          session.reused += r.stats.reusedTokens;
          session.generated += r.stats.generatedTokens;
          if (r.stats.contextShift) session.shifts++;
        } catch (e) {
          // A failed turn (e.g. one message larger than the context) should not end the session.
          if (!isActiveflowError(e)) throw e;
          messages.pop();
          const hint = e.code === "CONTEXT_FULL" ? " (type /reset to start over)" : "";
          ctx.stderr.write(`error: ${e.message}${hint}\n`);
        } finally {
          generating = false;
        }
      }
      rl.setPrompt("> ");
      rl.prompt();
    }
  } finally {
    off();
    rl.close();
  }
  if (interactive) ctx.stdout.write("\n");
  return 0;
}

function slashCommand(
  ctx: CliContext, engine: EngineLike, name: string, arg: string, messages: ChatMessage[], base: number, session: Session, budgeted: boolean,
): void {
  const say = (s: string) => ctx.stderr.write(`${s}\n`);
  switch (name) {
    case "/help":
      say(HELP);
      return;
    case "/reset":
      messages.length = base;
      say("(conversation cleared)");
      return;
    case "/stats": {
      say(session.last ? statsLine(session.last) : "no reply yet");
      const ctxLen = engine.contextLength !== undefined ? ` of a ${engine.contextLength}-token context` : "";
      const lastUse = session.last ? `; the last turn used ${session.last.stats.promptTokens + session.last.stats.generatedTokens} tokens${ctxLen}` : "";
      say(
        `session: ${session.turns} turns, ${messages.length - base} messages kept, ${session.prefilled} tokens prefilled (${session.reused} reused from the cache), ` +
          `${session.generated} generated, ${session.shifts} context shifts${lastUse}`,
      );
      return;
    }
    case "/budget": {
      if (arg === "") {
        say("error: /budget needs a size: /budget 512MB, /budget 35% or /budget <bytes>");
        return;
      }
      if (engine.setDramBudget === undefined || !budgeted) {
        say("error: /budget needs a model run under a DRAM budget (start the chat with --dram)");
        return;
      }
      try {
        const bytes = engine.setDramBudget(arg, "/budget");
        say(`(DRAM budget ${(bytes / MiB).toFixed(1)} MiB from the next token on)`);
      } catch (e) {
        if (!isActiveflowError(e)) throw e;
        say(`error: /budget ${arg}: ${e.message}`);
      }
      return;
    }
    default:
      say(`unknown command ${name}; /help lists the commands (start a message with // to send a leading /)`);
  }
}
