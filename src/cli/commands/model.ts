// Turns the <model> argument into a file path (or fetches SmolLM2), and loads the engine.
import { statSync } from "node:fs";
import { basename, resolve } from "node:path";
import { ActiveflowError } from "../../errors.js";
import type { CachePolicy, ContextSizer, LoadOptions } from "../../engine/types.js";
import type { ChatMessage } from "../../tokenizer/types.js";
import type { OptionValues } from "../args.js";
import { ProgressLine } from "../progress.js";
import type { CliContext, EngineLike } from "./context.js";
import { fetchSmolLM2WithProgress } from "./fetch.js";

export const SMOLLM2_ALIAS = "smollm2";

export async function resolveModelPath(arg: string, ctx: CliContext): Promise<string> {
  const path = resolve(arg);
  let st;
  try {
    st = statSync(path);
  } catch {
    if (arg === SMOLLM2_ALIAS) return fetchSmolLM2WithProgress(ctx);
    throw new ActiveflowError("ENOENT_MODEL", `model file not found: ${path}`);
  }
  if (!st.isFile()) throw new ActiveflowError("ENOENT_MODEL", `model path is not a file: ${path} (expected a .gguf file)`);
  return path;
}

export function loadOptions(values: OptionValues): LoadOptions {
  const o: LoadOptions = {};
  if (values.threads !== undefined) o.threads = values.threads;
  if (values.ctx !== undefined) o.contextLength = values.ctx;
  if (values.dram !== undefined) o.dram = values.dram;
  if (values.sparsity !== undefined) o.sparsity = values.sparsity;
  if (values.autoSparsity === true) o.sparsity = "auto";
  if (values.maxSparsity !== undefined) o.maxSparsity = values.maxSparsity;
  if (values.maxKl !== undefined) o.maxKl = values.maxKl;
  if (values.minTop1 !== undefined) o.minTop1 = values.minTop1;
  if (values.groupSize !== undefined) o.groupSize = values.groupSize;
  if (values.verifyReads === true) o.verifyReads = true;
  if (values.preload === true) o.preload = true;
  if (typeof values.predictMargin === "number") o.predictMargin = values.predictMargin;
  if (typeof values.readGap === "number") o.readGap = values.readGap;
  if (typeof values.cachePolicy === "string") o.cachePolicy = values.cachePolicy as CachePolicy;
  return o;
}

// What the first generation will hold in the context: a raw prompt (run) or chat messages.
export type FirstInput = { prompt: string } | { messages: ChatMessage[] } | undefined;

const CTX_ROUND = 64;
// Interactive chat cannot know its conversation's length up front.
export const CHAT_FLASH_CONTEXT = 512;

// Under a DRAM budget the KV cache is part of the budget, so the context defaults to what the
// first generation needs (its prompt tokens + maxTokens, rounded up to 64) instead of the
// engine's 2048. The engine calls the sizer with the tokenizer it builds anyway, so the
// vocabulary is read once.
export function budgetContextLength(first: FirstInput, maxTokens: number): number | ContextSizer {
  if (first === undefined) return CHAT_FLASH_CONTEXT;
  return (tokenizer, trainedContext) => {
    const promptTokens =
      "prompt" in first
        ? tokenizer.encode(first.prompt, { addSpecial: true }).length
        : tokenizer.encode(tokenizer.applyChatTemplate(first.messages, { addGenerationPrompt: true }), { addSpecial: false, parseSpecial: true }).length;
    const wanted = Math.ceil((promptTokens + maxTokens) / CTX_ROUND) * CTX_ROUND;
    return Math.min(wanted, Math.max(CTX_ROUND, trainedContext));
  };
}

// Load options for run/chat, plus a progress line for a first-time conversion (--dram on a
// .gguf). Returns the options and the function that ends the progress line.
export async function engineLoadOptions(
  ctx: CliContext,
  path: string,
  values: OptionValues,
  first: FirstInput,
): Promise<{ options: LoadOptions; done: () => void }> {
  // Before anything of the model is read: the runtime floor the stats report apart from the
  // model's memory.
  await measureRuntimeFloor();
  const options = loadOptions(values);
  if (values.dram === undefined) return { options, done: () => {} };
  if (options.contextLength === undefined) options.contextLength = budgetContextLength(first, values.maxTokens ?? 128);
  const line = new ProgressLine(ctx.stderr);
  let label: string | undefined;
  // The converter's one message ("converting <source> ... -> <target>") is the progress label.
  options.log = (s) => {
    label = s;
  };
  // The converter reports 1 only once its file is in place: an aborted or failed conversion
  // must not be announced as done.
  let finished = false;
  options.onProgress = (f) => {
    if (f >= 1) finished = true;
    if (label !== undefined) line.update(label, f);
  };
  // Ctrl-C while loading (a first conversion can take minutes) stops it cleanly: the converter
  // removes its partial file and main exits 130.
  const controller = new AbortController();
  options.signal = controller.signal;
  const off = ctx.onInterrupt(() => controller.abort());
  return {
    options,
    done: () => {
      off();
      line.done(label !== undefined && finished ? `converted ${basename(path)} to the flash layout` : undefined);
    },
  };
}

// --ctx above the model's trained context is used as given, with a warning, as llama.cpp does
// (and node-llama-cpp takes an explicit contextSize): positions past the trained length were
// never seen in training, so output usually degrades there, but a user may know better.
export function warnAboveTrainedContext(ctx: CliContext, engine: EngineLike, values: OptionValues): void {
  const trained = engine.trainedContext;
  if (values.ctx === undefined || trained === undefined || values.ctx <= trained) return;
  ctx.stderr.write(
    `warning: --ctx ${values.ctx} is above the model's trained context of ${trained} tokens; ` +
      `it is used as given, but the model never saw positions past ${trained} in training and its output usually degrades there\n`,
  );
}

// The process's RSS with the engine and its addon loaded and no model open (once per process).
export async function measureRuntimeFloor(): Promise<void> {
  const { Engine } = await import("../../engine/Engine.js");
  const { defaultBackend } = await import("../../backends/default.js");
  Engine.measureRuntimeFloor(defaultBackend());
}

// The real engine is imported lazily: --help, argument errors and fetch never load the addon.
export async function loadRealEngine(path: string, options: LoadOptions): Promise<EngineLike> {
  const { Engine } = await import("../../engine/Engine.js");
  const { defaultBackend } = await import("../../backends/default.js");
  return Engine.load(path, options, defaultBackend());
}
