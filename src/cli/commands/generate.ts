// Shared by run and chat: option mapping, streaming tokens to stdout, Ctrl-C, and the
// stats/JSON output after a generation.
import { randomSeed } from "../../engine/rng.js";
import type { GeneratedToken, GenerateOptions, GenerationStats } from "../../engine/types.js";
import type { OptionValues } from "../args.js";
import { jsonLine, statsLine, type GenerationResult } from "../output.js";
import type { CliContext } from "./context.js";

export interface SamplingChoice {
  options: GenerateOptions;
  seed: number | undefined; // undefined when greedy
}

// Maps CLI options to GenerateOptions. Picks the seed here when none was given, so the stats
// line can print it and the run can be repeated with --seed.
export function generateOptions(values: OptionValues, seedOffset = 0): SamplingChoice {
  const o: GenerateOptions = {};
  if (values.maxTokens !== undefined) o.maxTokens = values.maxTokens;
  if (values.temperature !== undefined) o.temperature = values.temperature;
  if (values.topK !== undefined) o.topK = values.topK;
  if (values.topP !== undefined) o.topP = values.topP;
  if (values.minP !== undefined) o.minP = values.minP;
  if (values.repeatPenalty !== undefined) o.repeatPenalty = values.repeatPenalty;
  if (values.repeatLastN !== undefined) o.repeatLastN = values.repeatLastN;
  if (values.stop !== undefined) o.stop = values.stop;
  if (values.schema !== undefined) o.schema = values.schema;
  const greedy = values.greedy === true || values.temperature === 0;
  if (greedy) {
    o.greedy = true;
    return { options: o, seed: undefined };
  }
  const seed = ((values.seed ?? randomSeed()) + seedOffset) % Number.MAX_SAFE_INTEGER;
  o.seed = seed;
  return { options: o, seed };
}

// Drains a generation, streaming text to stdout unless `json`. Ctrl-C aborts it through the
// signal; the engine then returns its stats with stopReason "aborted".
export async function streamGeneration(
  ctx: CliContext,
  start: (signal: AbortSignal) => AsyncGenerator<GeneratedToken, GenerationStats, void>,
  choice: SamplingChoice,
  json: boolean,
): Promise<GenerationResult> {
  const controller = new AbortController();
  const off = ctx.onInterrupt(() => controller.abort());
  const tokens: number[] = [];
  let text = "";
  try {
    const gen = start(controller.signal);
    for (;;) {
      const r = await gen.next();
      if (r.done === true) return { tokens, text, stats: r.value, seed: choice.seed };
      if (r.value.id >= 0) tokens.push(r.value.id); // -1: text held back for a stop string, no token
      text += r.value.text;
      if (!json && r.value.text !== "") ctx.stdout.write(r.value.text);
    }
  } finally {
    off();
  }
}

// After a generation: end the streamed line, stats to stderr, JSON record to stdout.
export function reportGeneration(ctx: CliContext, r: GenerationResult, json: boolean): void {
  if (json) {
    ctx.stdout.write(`${jsonLine(r)}\n`);
  } else {
    ctx.stdout.write("\n");
  }
  ctx.stderr.write(`${statsLine(r)}\n`);
}

// 130 is the shell's code for "ended by Ctrl-C".
export function exitCodeFor(r: GenerationResult): number {
  return r.stats.stopReason === "aborted" ? 130 : 0;
}
