// Calibration: gather score histograms at every linear layer's input over text the model
// itself writes (or a user's file), then turn them into thresholds per sparsity level, and
// measure the KL and top-1 agreement each level keeps on that text (the tuner's quality
// floor). The score is |x| (magnitude selection) or |x| x the weight column's norm
// (weight-aware). Never calibrate on the evaluation text (wiki.test.raw).
import type { SiteHistograms } from "../backend/Backend.js";
import type { SparsityTarget } from "./target.js";
import { allocateGreedy, probeSensitivity, PROBE_TOKENS, siteWeightBytes } from "./allocate.js";
import { CalibrationProgress, type OverallProgress, type StagePlan } from "./calibrationProgress.js";
import { checkpointKey, histogramsFromJson, histogramsToJson, readCheckpoint, removeCheckpoint, writeCheckpoint, type CheckpointState } from "./checkpoint.js";
import { computeColumnNorms } from "./columnNorms.js";
import { measureLevelQuality } from "./levelQuality.js";
import type { Selection } from "./selection.js";
import { ActiveflowError } from "../errors.js";
import { SPARSITY_LEVELS, thresholdsAt, thresholdsFromHistograms, type ThresholdTable } from "./thresholds.js";
import { moeUnsupported } from "../model/moe.js";

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
// The CLI's default: matched takes about a tenth of greedy's time (which probes every layer
// and site) for most of its quality at sparsity 0.5 (bench/results/calibrate-default-*.json);
// greedy stays an option. calibrate() itself defaults to uniform (fast, for benches).
export const DEFAULT_METHOD: CalibrationMethod = "matched";

export interface CalibrateOptions {
  // User text to calibrate on instead of self-generated text.
  text?: string;
  // Tokens each prompt is continued by (self-generated text). Defaults to 64.
  tokensPerPrompt?: number;
  // Most tokens of a user text to use. Defaults to 4096.
  maxTokens?: number;
  levels?: readonly number[];
  method?: CalibrationMethod;
  // The score thresholds are chosen on (columnNorms.ts). Defaults to magnitude.
  selection?: Selection;
  seed?: number;
  signal?: AbortSignal;
  // Resume: a file calibrate() saves its finished steps to and, with the same model and
  // settings, starts from; removed when the table is complete. Defaults to none.
  checkpoint?: string;
  // Told which steps a checkpoint let calibrate() skip.
  onResume?: (what: string) => void;
  // fraction of the stage done, what is being done, and (from calibrate()) the whole run's
  // fraction and time left
  onProgress?: (fraction: number, stage?: string, overall?: OverallProgress) => void;
}

export interface CalibrationText {
  // Token windows, each evaluated from a fresh context (at most the engine's context).
  windows: number[][];
  tokens: number;
  source: string;
}

// The calibration text as token windows: the user's text cut into 512-token windows, or the
// dense model's continuations of the fixed prompts (prompt and continuation together).
export async function calibrationText(engine: SparsityTarget, options: CalibrateOptions = {}): Promise<CalibrationText> {
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
  engine: SparsityTarget,
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
  engine: SparsityTarget,
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

const QUALITY_STAGE = "measuring quality";

// The stages calibrate() will run and the tokens each evaluates, for the overall progress.
// The text's length is estimated before it is generated (prompts plus their continuations).
export function calibrationPlan(engine: SparsityTarget, options: CalibrateOptions, levels: readonly number[], method: CalibrationMethod, textTokens?: number): StagePlan[] {
  const per = options.tokensPerPrompt ?? 64;
  const generated = options.text === undefined ? CALIBRATION_PROMPTS.length * per : 0;
  const tokens = textTokens ?? (options.text !== undefined
    ? Math.min(options.maxTokens ?? 4096, engine.tokenizer.encode(options.text).length)
    : generated + CALIBRATION_PROMPTS.reduce((n, p) => n + engine.tokenizer.encode(p, { addSpecial: true }).length, 0));
  const plan: StagePlan[] = [];
  if (generated > 0) plan.push({ name: "generating text", kind: "decode", tokens: generated });
  plan.push({ name: "dense statistics", kind: "pass", tokens });
  if (method === "greedy") plan.push({ name: "probing sensitivity", kind: "probe", tokens: (engine.config.nLayer * 4 + 1) * Math.min(tokens, PROBE_TOKENS) });
  if (method !== "uniform") for (const l of levels) if (l !== 0) plan.push({ name: `matching level ${l}`, kind: "pass", tokens: 2 * tokens });
  // A dense pass and one per sparse level, each with a softmax per token, as a probe.
  plan.push({ name: QUALITY_STAGE, kind: "probe", tokens: tokens * (1 + levels.filter((l) => l !== 0).length) });
  return plan;
}

export async function calibrate(engine: SparsityTarget, options: CalibrateOptions = {}): Promise<ThresholdTable> {
  if (engine.config.moe) throw moeUnsupported(engine.path, engine.config.arch, engine.config.moe.nExpert, "calibration");
  const levels = options.levels ?? SPARSITY_LEVELS;
  const method = options.method ?? "uniform";
  const selection = options.selection ?? "magnitude";
  if (selection === "weight" && engine.flash) {
    throw new ActiveflowError("BAD_ARGUMENT", `${engine.path}: weight-aware calibration reads the column norms from the source GGUF; calibrate the GGUF the file was converted from (its conversions get the table), or use selection magnitude`);
  }
  const columnNorms = selection === "weight" ? await computeColumnNorms(engine.backend, engine.path) : undefined;
  engine.setColumnNorms(columnNorms ?? null);
  try {
    const table = await calibrateOn(engine, options, levels, method);
    return { ...table, selection, ...(columnNorms ? { columnNorms } : {}) };
  } finally {
    engine.setColumnNorms(null);
  }
}

async function calibrateOn(engine: SparsityTarget, options: CalibrateOptions, levels: readonly number[], method: CalibrationMethod): Promise<ThresholdTable> {
  const progress = new CalibrationProgress(calibrationPlan(engine, options, levels, method));
  const report = (f: number, stage: string) => options.onProgress?.(f, stage, progress.update(stage, f));
  const sig = options.signal ? { signal: options.signal } : {};
  const path = options.checkpoint;
  const key = checkpointKey({
    model: engine.path, bytes: engine.modelBytes, method, levels, ...(options.selection === "weight" ? { selection: "weight" } : {}), text: options.text !== undefined ? checkpointKey({ t: options.text }) : null,
    maxTokens: options.maxTokens ?? null, per: options.tokensPerPrompt ?? null, seed: options.seed ?? null, ctx: engine.contextLength,
  });
  const state: CheckpointState = (path !== undefined ? await readCheckpoint(path, key) : undefined) ?? { key };
  const save = async () => {
    if (path !== undefined) await writeCheckpoint(path, state);
  };
  if (state.text) {
    const done = [
      "the text", state.dense ? "the dense statistics" : "", state.probe ? `${state.probe.done} probes` : "",
      state.matched ? `${Object.keys(state.matched).length} matched levels` : "",
      state.quality ? `${state.quality.done} quality windows` : "",
    ].filter((s) => s !== "");
    options.onResume?.(done.join(", "));
  }
  const text = state.text ?? (await calibrationText(engine, { ...options, onProgress: (f, s) => report(f, s ?? "") }));
  if (!state.text) {
    state.text = text;
    await save();
  }
  let dense: SiteHistograms;
  if (state.dense) {
    dense = histogramsFromJson(state.dense);
  } else {
    dense = await captureHistograms(engine, text.windows, null, { ...sig, onProgress: (f) => report(f, "dense statistics") });
    state.dense = histogramsToJson(dense);
    await save();
  }
  const table = thresholdsFromHistograms(dense, engine.config.nLayer, levels, text.tokens, text.source);
  // Every table ends alike: each level scored against the dense model on the text, then the
  // checkpoint removed.
  const finish = async (t: ThresholdTable): Promise<ThresholdTable> => {
    const quality = await measureLevelQuality(engine, text.windows, levels, t.thresholds, {
      ...sig,
      onProgress: (f) => report(f, QUALITY_STAGE),
      ...(state.quality ? { start: state.quality } : {}),
      onWindow: async (sums) => {
        state.quality = { ...sums, kl: [...sums.kl], agree: [...sums.agree] };
        await save();
      },
    });
    if (path !== undefined) await removeCheckpoint(path);
    return { ...t, quality };
  };
  if (method === "uniform") return finish(table);
  let targets = table.siteSparsity!;
  if (method === "greedy") {
    const bytes = await siteWeightBytes(engine);
    const probe = await probeSensitivity(engine, text.windows, dense, {
      ...sig,
      onProgress: (f) => report(f, "probing sensitivity"),
      ...(state.probe ? { start: state.probe } : {}),
      onSite: async (kl, done, tokens) => {
        state.probe = { kl: Array.from(kl.subarray(0, done)), done, tokens };
        await save();
      },
    });
    targets = allocateGreedy(dense, probe, bytes, levels);
  }
  const thresholds: Float32Array[] = [];
  for (const [i, target] of targets.entries()) {
    const stage = `matching level ${levels[i]}`;
    const saved = state.matched?.[String(i)];
    if (levels[i] === 0) thresholds.push(table.thresholds[i]!);
    else if (saved) thresholds.push(Float32Array.from(saved));
    else {
      const t = await matchedThresholds(engine, text.windows, dense, target, { ...sig, onProgress: (f) => report(f, stage) });
      thresholds.push(t);
      state.matched = { ...state.matched, [String(i)]: Array.from(t) };
      await save();
    }
  }
  return finish({ ...table, thresholds, siteSparsity: targets, method });
}
