// `activeflow chat <model>`: an interactive session (or one turn with -p) using the model's
// chat template. The conversation is kept and re-sent each turn; the engine reuses the KV
// cache for the shared prefix.
import { createInterface } from "node:readline";
import { isActiveflowError } from "../../errors.js";
import type { ChatMessage } from "../../tokenizer/types.js";
import type { OptionValues } from "../args.js";
import type { CliContext, EngineLike } from "./context.js";
import { exitCodeFor, generateOptions, reportGeneration, streamGeneration } from "./generate.js";
import { engineLoadOptions, resolveModelPath } from "./model.js";

export async function chatCommand(ctx: CliContext, model: string, values: OptionValues): Promise<number> {
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
  try {
    if (values.prompt !== undefined) {
      messages.push({ role: "user", content: values.prompt });
      return await turn(ctx, engine, messages, values, 0);
    }
    return await repl(ctx, engine, messages, values);
  } finally {
    await engine.dispose();
  }
}

// One reply: streams it, appends it to `messages`, prints stats. Returns the exit code.
async function turn(ctx: CliContext, engine: EngineLike, messages: ChatMessage[], values: OptionValues, index: number): Promise<number> {
  const choice = generateOptions(values, index);
  const json = values.json === true;
  const result = await streamGeneration(ctx, (signal) => engine.chat(messages, { ...choice.options, signal }), choice, json);
  messages.push({ role: "assistant", content: result.text });
  reportGeneration(ctx, result, json);
  return exitCodeFor(result);
}

async function repl(ctx: CliContext, engine: EngineLike, messages: ChatMessage[], values: OptionValues): Promise<number> {
  const interactive = ctx.stdin.isTTY === true;
  const rl = createInterface({ input: ctx.stdin, ...(interactive ? { output: ctx.stdout, terminal: true } : { terminal: false }) });
  const base = messages.length; // the system message, if any, survives /reset
  let generating = false;
  // On a terminal readline sees Ctrl-C as a key, not a signal: route it to the same abort
  // path as a real SIGINT while a reply runs, and quit at the prompt.
  const keyInterrupt = new Set<() => void>();
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
  if (interactive) ctx.stderr.write("Chat started. /exit or Ctrl-D quits, /reset forgets the conversation, Ctrl-C stops a reply.\n");
  let turns = 0;
  try {
    rl.setPrompt("> ");
    rl.prompt();
    for await (const raw of rl) {
      const line = raw.trim();
      if (line === "/exit" || line === "/quit") break;
      if (line === "/reset") {
        messages.length = base;
        ctx.stderr.write("(conversation cleared)\n");
      } else if (line !== "") {
        messages.push({ role: "user", content: line });
        generating = true;
        try {
          await turn(turnCtx, engine, messages, values, turns++);
        } catch (e) {
          // A failed turn (e.g. the context is full) should not end the session.
          if (!isActiveflowError(e)) throw e;
          messages.pop();
          const hint = e.code === "CONTEXT_FULL" ? " (type /reset to start over)" : "";
          ctx.stderr.write(`error: ${e.message}${hint}\n`);
        } finally {
          generating = false;
        }
      }
      rl.prompt();
    }
  } finally {
    off();
    rl.close();
  }
  if (interactive) ctx.stdout.write("\n");
  return 0;
}
