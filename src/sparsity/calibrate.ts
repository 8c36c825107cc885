// Calibration: gather |x| histograms at every linear layer's input over text the model
// itself writes (or a user's file), then turn them into thresholds per sparsity level.
// Never calibrate on the evaluation text (wiki.test.raw).
import type { SiteHistograms } from "../backend/Backend.js";
import type { Engine } from "../engine/Engine.js";
import { allocateGreedy, probeSensitivity, siteWeightBytes } from "./allocate.js";
import { SPARSITY_LEVELS, thresholdsAt, thresholdsFromHistograms, type ThresholdTable } from "./thresholds.js";

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

// How a level's sparsity is spread over layers and sites.
//  uniform: every site's threshold is the level's quantile of its dense inputs.
//  matched: the same per-site fraction, but each threshold is the quantile of the inputs the
//    site sees when the sites before it are sparse too (their outputs shrink, so dense
//    quantiles drop more than asked at attn_out and ffn_out).
//  greedy: per-(layer, site) fractions chosen to minimise the predicted KL to the dense model
//    at the same byte-weighted mean (allocate.ts), then matched.
export type CalibrationMethod = "uniform" | "matched" | "greedy";
export const CALIBRATION_METHODS: readonly CalibrationMethod[] = ["uniform", "matched", "greedy"];
// The CLI's default: best on the calibration text and on wiki.test.raw at every level measured
// (bench/results/quality-alloc-*.json). calibrate() itself defaults to uniform (fast, for benches).
export const DEFAULT_METHOD: CalibrationMethod = "greedy";

export interface CalibrateOptions {
  // User text to calibrate on instead of self-generated text.
  text?: string;
  // Tokens each prompt is continued by (self-generated text). Defaults to 64.
  tokensPerPrompt?: number;
  // Most tokens of a user text to use. Defaults to 4096.
  maxTokens?: number;
  levels?: readonly number[];
  method?: CalibrationMethod;
  seed?: number;
  signal?: AbortSignal;
  // fraction done, and what is being done
  onProgress?: (fraction: number, stage?: string) => void;
}

export interface CalibrationText {
  // Token windows, each evaluated from a fresh context (at most the engine's context).
  windows: number[][];
  tokens: number;
  source: string;
}

// The calibration text as token windows: the user's text cut into 512-token windows, or the
// dense model's continuations of the fixed prompts (prompt and continuation together).
export async function calibrationText(engine: Engine, options: CalibrateOptions = {}): Promise<CalibrationText> {
  engine.setThresholds(null); // the dense model writes the text
  const windows: number[][] = [];
  if (options.text !== undefined) {
    const ids = engine.tokenizer.encode(options.text).slice(0, options.maxTokens ?? 4096);
    const window = Math.min(512, engine.contextLength);
    for (let i = 0; i < ids.length; i += window) windows.push(ids.slice(i, i + window));
    options.onProgress?.(1, "tokenising");
    return { windows, tokens: ids.length, source: "user text" };
  }
  const per = options.tokensPerPrompt ?? 64;
  let tokens = 0;
  for (const [i, prompt] of CALIBRATION_PROMPTS.entries()) {
    const ids = engine.tokenizer.encode(prompt, { addSpecial: true });
    const gen = engine.generate(ids, {
      maxTokens: Math.max(0, Math.min(per, engine.contextLength - ids.length)),
      temperature: 0.8,
      topK: 40,
      seed: (options.seed ?? 1234) + i,
      stopAtEos: false,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    let r = await gen.next();
    while (!r.done) {
      ids.push(r.value.id);
      r = await gen.next();
    }
    windows.push(ids);
    tokens += ids.length;
    options.onProgress?.((i + 1) / CALIBRATION_PROMPTS.length, "generating text");
  }
  return { windows, tokens, source: `self-generated (${CALIBRATION_PROMPTS.length} prompts x ${per} tokens)` };
}

// |x| histograms of every site over `windows`, with `thresholds` in force (null: dense).
export async function captureHistograms(
  engine: Engine,
  windows: readonly number[][],
  thresholds: Float32Array | null,
  options: { signal?: AbortSignal; onProgress?: (fraction: number) => void } = {},
): Promise<SiteHistograms> {
  engine.setThresholds(thresholds);
  engine.setCapture(true, true);
  try {
    for (const [i, w] of windows.entries()) {
      await engine.evaluateLogits(w, options.signal);
      options.onProgress?.((i + 1) / windows.length);
    }
    return engine.histograms();
  } finally {
    engine.setCapture(false);
    engine.setThresholds(null);
  }
}

// Passes of `matched`: each one re-measures every site's inputs with the thresholds of the
// previous pass upstream. Two leave the kept fractions within ~1 % of the targets.
const MATCH_PASSES = 2;

// Thresholds that drop `target[layer * 4 + site]` of each site's inputs with every site sparse.
export async function matchedThresholds(
  engine: Engine,
  windows: readonly number[][],
  dense: SiteHistograms,
  target: Float32Array,
  options: { signal?: AbortSignal; onProgress?: (fraction: number) => void } = {},
): Promise<Float32Array> {
  let t = thresholdsAt(dense, target);
  for (let pass = 0; pass < MATCH_PASSES; pass++) {
    const h = await captureHistograms(engine, windows, t, {
      ...(options.signal ? { signal: options.signal } : {}),
      onProgress: (f) => options.onProgress?.((pass + f) / MATCH_PASSES),
    });
    t = thresholdsAt(h, target);
  }
  return t;
}

export async function calibrate(engine: Engine, options: CalibrateOptions = {}): Promise<ThresholdTable> {
  const levels = options.levels ?? SPARSITY_LEVELS;
  const method = options.method ?? "uniform";
  const report = options.onProgress ?? (() => {});
  const sig = options.signal ? { signal: options.signal } : {};
  const text = await calibrationText(engine, { ...options, onProgress: (f, s) => report(f, s) });
  const dense = await captureHistograms(engine, text.windows, null, { ...sig, onProgress: (f) => report(f, "dense statistics") });
  const table = thresholdsFromHistograms(dense, engine.config.nLayer, levels, text.tokens, text.source);
  if (method === "uniform") return table;
  let targets = table.siteSparsity!;
  if (method === "greedy") {
    const bytes = await siteWeightBytes(engine);
    const probe = await probeSensitivity(engine, text.windows, dense, { ...sig, onProgress: (f) => report(f, "probing sensitivity") });
    targets = allocateGreedy(dense, probe, bytes, levels);
  }
  const thresholds: Float32Array[] = [];
  for (const [i, target] of targets.entries()) {
    const stage = `matching level ${levels[i]}`;
    thresholds.push(levels[i] === 0 ? table.thresholds[i]! : await matchedThresholds(engine, text.windows, dense, target, { ...sig, onProgress: (f) => report(f, stage) }));
  }
  return { ...table, thresholds, siteSparsity: targets, method };
}
