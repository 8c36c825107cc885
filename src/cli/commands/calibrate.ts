// `activeflow calibrate <model>`: thresholds for every sparsity level, and the KL and top-1
// agreement each level keeps on the calibration text. A converted (flash) file gets them in its
// own header (activeflow.thresholds.* keys); a plain GGUF, which we do not rewrite, gets
// <model>.calibration.json beside it, and its cached conversions get the keys.
import { readdir } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { ActiveflowError } from "../../errors.js";
import { readTextFile } from "./input.js";
import type { OptionValues } from "../args.js";
import { jsonText } from "../output.js";
import { ProgressLine } from "../progress.js";
import type { CalibrationMethod } from "../../sparsity/calibrate.js";
import { DEFAULT_SELECTION, type Selection } from "../../sparsity/selection.js";
import type { CliContext } from "./context.js";
import { resolveModelPath } from "./model.js";
import { formatTable } from "./table.js";
import { formatEta } from "../../sparsity/calibrationProgress.js";
import { MIN_CALIBRATION_TOKENS } from "../../sparsity/thresholds.js";
import { readGguf } from "../../gguf/reader.js";
import { refuseMoe } from "../../model/moe.js";
import { sweepTemps } from "../../tempFiles.js";

// The evaluation text (DESIGN.md, "Measuring"): calibrating on it would make eval meaningless.
export const EVALUATION_TEXT_NAME = "wiki.test.raw";

export function refuseEvaluationText(path: string): void {
  if (basename(path).toLowerCase() === EVALUATION_TEXT_NAME) {
    throw new ActiveflowError(
      "BAD_ARGUMENT",
      `calibrate: ${path} is the evaluation text; calibration text must be disjoint from it (use another text file, or no --text for self-generated text)`,
    );
  }
}

const BUILTIN_PROMPTS = 16;

export async function calibrateCommand(ctx: CliContext, model: string, values: OptionValues): Promise<number> {
  if (values.text !== undefined) refuseEvaluationText(values.text);
  const path = await resolveModelPath(model, ctx);
  // An MoE model fails here, before loading it (src/model/moe.ts).
  refuseMoe(await readGguf(path), "calibration");
  // A killed calibration's temporary files beside the model (its sidecar's and checkpoint's
  // .tmp-<pid>, a flash header update's .meta-<pid>.tmp copy of the whole file) are only ever
  // seen here: the cache sweep covers the cache alone.
  await sweepTemps(dirname(path), `${basename(path)}.`);
  const text = values.text !== undefined ? await readTextFile(values.text) : undefined;
  const { Engine } = await import("../../engine/Engine.js");
  const { defaultBackend } = await import("../../backends/default.js");
  const { calibrate, CALIBRATION_PROMPTS, DEFAULT_METHOD } = await import("../../sparsity/calibrate.js");
  const { storeCalibration } = await import("../../sparsity/store.js");
  const method = (values.method ?? DEFAULT_METHOD) as CalibrationMethod;
  const selection = (values.selection ?? DEFAULT_SELECTION) as Selection;
  const engine = await Engine.load(path, values.threads !== undefined ? { threads: values.threads } : {}, defaultBackend());
  if (text !== undefined) {
    const tokens = engine.tokenizer.encode(text).length;
    if (tokens < MIN_CALIBRATION_TOKENS) {
      await engine.dispose();
      throw new ActiveflowError("BAD_ARGUMENT", `text file ${values.text} is too short to calibrate on: ${tokens} token${tokens === 1 ? "" : "s"}, at least ${MIN_CALIBRATION_TOKENS} needed`);
    }
  }
  const line = new ProgressLine(ctx.stderr);
  const controller = new AbortController();
  const off = ctx.onInterrupt(() => controller.abort());
  let table;
  let lastStage: string | undefined;
  // Finished steps are saved here, so an interrupted run resumes (removed once complete).
  const checkpoint = `${path}.calibrate-checkpoint.json`;
  try {
    const perPrompt = Math.ceil((values.tokens ?? BUILTIN_PROMPTS * 64) / CALIBRATION_PROMPTS.length);
    table = await calibrate(engine, {
      checkpoint,
      onResume: (what) => ctx.stderr.write(`resuming the interrupted calibration saved in ${checkpoint} (done: ${what})\n`),
      ...(text !== undefined ? { text, maxTokens: values.tokens ?? 4096 } : { tokensPerPrompt: perPrompt }),
      method,
      selection,
      signal: controller.signal,
      onProgress: (f, stage, overall) => {
        // Overall percentage and time left; a log (no terminal) gets one line per stage with the estimate then.
        const eta = overall?.etaSeconds !== undefined ? `${formatEta(overall.etaSeconds)} left` : undefined;
        const label = `calibrating ${basename(path)} (${method}, ${selection})${stage ? `: ${stage}` : ""}`;
        if (ctx.stderr.isTTY === true) line.update(label, overall?.fraction ?? f, eta);
        else if (stage !== lastStage) line.update(eta !== undefined ? `${label} (${((overall?.fraction ?? 0) * 100).toFixed(0)}% done, about ${eta})` : label);
        lastStage = stage;
      },
    });
    line.done();
  } catch (e) {
    line.done();
    if (controller.signal.aborted) {
      ctx.stderr.write(`calibration interrupted; what was done is saved in ${checkpoint}, and the same command resumes from it\n`);
      return 130;
    }
    throw e;
  } finally {
    off();
    await engine.dispose();
  }
  // The model itself (its header, or the sidecar of a GGUF), then a GGUF's cached conversions.
  const saved = [await storeCalibration(path, table)];
  if (engine.flash === undefined) {
    for (const converted of await cachedConversions(path)) saved.push(await storeCalibration(converted, table));
  }
  const sites = table.sites;
  const mean = table.thresholds.map((t) =>
    sites.map((_, s) => {
      let sum = 0;
      for (let l = 0; l < table.nLayer; l++) sum += Math.max(0, t[l * sites.length + s]!);
      return sum / table.nLayer;
    }),
  );
  // What each level kept on the calibration text (the tuner's quality floor reads it).
  const q = table.quality;
  if (values.json === true) {
    ctx.stdout.write(
      `${jsonText({
        paths: saved, tokens: table.calibrationTokens, source: table.source, method, selection, levels: table.levels, sites, mean_thresholds: mean,
        ...(q ? { kl: q.kl, top1: q.top1, quality_tokens: q.tokens } : {}),
      })}\n`,
    );
    return 0;
  }
  ctx.stdout.write(`calibrated on ${table.calibrationTokens} tokens (${table.source}, ${method}, ${selection} selection); mean ${selection === "weight" ? "|x| x column norm" : "|x|"} threshold over layers:\n`);
  const measured = (i: number) => (q ? [q.kl[i]!.toFixed(4), q.top1[i]!.toFixed(3)] : []);
  ctx.stdout.write(formatTable(["sparsity", ...sites, ...(q ? ["kl", "top1"] : [])], table.levels.map((l, i) => [l.toFixed(2), ...mean[i]!.map((x) => x.toPrecision(3)), ...measured(i)])));
  if (q) ctx.stdout.write(`kl, top1: KL(dense || sparse) per token and top-1 agreement with the dense model, measured at each level on the calibration text (${q.tokens} positions); --max-kl / --min-top1 choose by them\n`);
  for (const p of saved) ctx.stdout.write(p.endsWith(".json") ? `saved ${p}\n` : `saved ${p} (activeflow.thresholds.* keys)\n`);
  return 0;
}

// Converted copies of a GGUF in the cache (any group size), as src/flash/cache.ts names them.
async function cachedConversions(source: string): Promise<string[]> {
  const { flashCachePath } = await import("../../flash/cache.js");
  // <name>-<size>-<mtime>.g<group>.<columns>.af.gguf: everything before ".g<group>." names the source.
  const one = await flashCachePath(source, 1);
  const b = basename(one);
  const prefix = b.slice(0, b.lastIndexOf(".g1.") + 2);
  let names: string[];
  try {
    names = await readdir(dirname(one));
  } catch {
    return [];
  }
  return names.filter((n) => n.startsWith(prefix) && n.endsWith(".af.gguf")).map((n) => join(dirname(one), n));
}
