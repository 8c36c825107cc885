// Calibration: gather |x| histograms at every linear layer's input over text the model
// itself writes (or a user's file), then turn them into thresholds per sparsity level.
// Never calibrate on the evaluation text (wiki.test.raw).
import type { Engine } from "../engine/Engine.js";
import { SPARSITY_LEVELS, thresholdsFromHistograms, type ThresholdTable } from "./thresholds.js";

// Diverse openings; the dense model continues each, and those continuations are the
// default calibration text. Fixed, so calibration is reproducible.
export const CALIBRATION_PROMPTS: readonly string[] = [
  "The history of the Roman Empire",
  "def merge_sort(items):\n",
  "Photosynthesis is the process by which",
  "Dear hiring manager,\nI am writing to",
  "The recipe calls for two cups of flour,",
  "In quantum mechanics, the uncertainty principle",
  "Breaking news: the city council voted",
  "Once upon a time, in a small village",
  "SELECT name, COUNT(*) FROM orders",
  "The best way to learn a new language is",
  "Q: What causes the seasons on Earth?\nA:",
  "The stock market fell sharply on Monday after",
  "Chapter 1\n\nThe rain had not stopped for three days",
  "To install the package, run the following command:",
  "Mount Everest, the highest mountain above sea level,",
  "Les enfants jouaient dans le parc quand",
];

export interface CalibrateOptions {
  // User text to calibrate on instead of self-generated text.
  text?: string;
  // Tokens each prompt is continued by (self-generated text). Defaults to 64.
  tokensPerPrompt?: number;
  // Most tokens of a user text to use. Defaults to 4096.
  maxTokens?: number;
  levels?: readonly number[];
  seed?: number;
  signal?: AbortSignal;
  onProgress?: (fraction: number) => void;
}

export async function calibrate(engine: Engine, options: CalibrateOptions = {}): Promise<ThresholdTable> {
  const levels = options.levels ?? SPARSITY_LEVELS;
  engine.setThresholds(null); // statistics of the dense model
  engine.setCapture(true, true);
  let tokens = 0;
  let source: string;
  try {
    if (options.text !== undefined) {
      const ids = engine.tokenizer.encode(options.text).slice(0, options.maxTokens ?? 4096);
      const window = Math.min(512, engine.contextLength);
      for (let i = 0; i < ids.length; i += window) {
        await engine.evaluateLogits(ids.slice(i, i + window), options.signal);
        tokens += Math.min(window, ids.length - i);
        options.onProgress?.(Math.min(1, (i + window) / ids.length));
      }
      source = "user text";
    } else {
      const per = options.tokensPerPrompt ?? 64;
      for (const [i, prompt] of CALIBRATION_PROMPTS.entries()) {
        const gen = engine.generate(prompt, {
          maxTokens: per,
          temperature: 0.8,
          topK: 40,
          seed: (options.seed ?? 1234) + i,
          stopAtEos: false,
          ...(options.signal ? { signal: options.signal } : {}),
        });
        let r = await gen.next();
        while (!r.done) r = await gen.next();
        tokens += r.value.promptTokens + r.value.generatedTokens;
        options.onProgress?.((i + 1) / CALIBRATION_PROMPTS.length);
      }
      source = `self-generated (${CALIBRATION_PROMPTS.length} prompts x ${per} tokens)`;
    }
    return thresholdsFromHistograms(engine.histograms(), engine.config.nLayer, levels, tokens, source);
  } finally {
    engine.setCapture(false);
  }
}
