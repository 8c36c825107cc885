// `activeflow distill <model> --sparsity s`: sparsity-aware self-distillation. Prepares the
// training tokens with the engine (the model's own continuations of the calibration prompts,
// cached, or --text), sets up the Python environment once, then runs python -m activeflow_distill,
// or torchrun with --procs processes.
import { createHash } from "node:crypto";
import { mkdir } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { sweepTemps } from "../../tempFiles.js";
import { ActiveflowError } from "../../errors.js";
import { readTextFile } from "./input.js";
import type { OptionValues } from "../args.js";
import { jsonText } from "../output.js";
import { ProgressLine } from "../progress.js";
import { EVALUATION_TEXT_NAME } from "./calibrate.js";
import type { CliContext } from "./context.js";
import { resolveModelPath } from "./model.js";
import { readGguf } from "../../gguf/reader.js";
import { refuseMoe } from "../../model/moe.js";

const SEQ_LEN = 256;
const DEFAULT_TOKENS = 144 * SEQ_LEN; // 9 continuations of each of the 16 calibration prompts

// Where the distilled model goes by default: beside the source, with the sparsity in the name
// (SmolLM2-135M-Instruct.Q4_1.gguf -> SmolLM2-135M-Instruct.Q4_1.distilled-s0.5.gguf).
export function distilledPath(model: string, sparsity: number): string {
  const stem = basename(model).replace(/\.gguf$/i, "");
  return join(dirname(model), `${stem}.distilled-s${sparsity}.gguf`);
}

export async function distillCommand(ctx: CliContext, model: string, values: OptionValues): Promise<number> {
  const sparsity = values.sparsity;
  if (sparsity === undefined || !(sparsity > 0)) throw new ActiveflowError("BAD_ARGUMENT", "distill needs --sparsity s with 0 < s < 1");
  if (values.text !== undefined && basename(values.text).toLowerCase() === EVALUATION_TEXT_NAME) {
    throw new ActiveflowError("BAD_ARGUMENT", `distill: ${values.text} is the evaluation text; training text must be disjoint from it`);
  }
  const path = await resolveModelPath(model, ctx);
  refuseMoe(await readGguf(path), "distillation");
  const { loadCalibration } = await import("../../sparsity/store.js");
  if ((await loadCalibration(path)) === undefined) {
    throw new ActiveflowError("BAD_ARGUMENT", `${path}: distillation uses the model's thresholds and it has none; run \`activeflow calibrate ${model}\` first`);
  }
  const out = values.out ?? distilledPath(path, sparsity);
  // A distillation killed earlier (kill -9 reaches neither tool's cleanup) left
  // <out>.tmp-<pid> or <out>.ckpt.tmp-<pid> beside the output: gone once their owner is.
  await sweepTemps(dirname(resolve(out)), basename(out));
  const log = (s: string) => ctx.stderr.write(s);
  const py = await import("../../distill/python.js");
  const python = await py.ensureVenv(log, ctx.env);
  const tokensFile = await trainingTokens(ctx, path, values);

  const args = [
    path, "--tokens", tokensFile, "--sparsity", String(sparsity), "--out", out, "--seq-len", String(SEQ_LEN), "--json",
  ];
  if (values.steps !== undefined) args.push("--steps", String(values.steps));
  if (values.lr !== undefined) args.push("--lr", String(values.lr));
  if (values.timeLimit !== undefined) args.push("--time-limit", String(values.timeLimit));
  if (values.threads !== undefined) args.push("--threads", String(values.threads));
  if (values.device !== undefined) args.push("--device", values.device);
  const procs = values.procs ?? 1;
  args.push("--batch", String(values.batch ?? procs));
  if (values.fsdp === true) args.push("--fsdp");
  if (values.seed !== undefined) args.push("--seed", String(values.seed));
  if (values.resume === true) args.push("--resume");
  if (ctx.stderr.isTTY !== true) args.push("--no-progress");
  const launch = { procs, ...(values.threads !== undefined ? { threads: values.threads } : {}) };
  if (procs > 1) {
    // The same command with torchrun's --nnodes / --rdzv-endpoint runs across machines.
    const c = py.launchCommand(python, "activeflow_distill", args, launch);
    log(`running: ${Object.entries(c.env).map(([k, v]) => `${k}=${v}`).join(" ")} ${c.cmd} ${c.args.join(" ")}\n`);
  }
  const controller = new AbortController();
  const off = ctx.onInterrupt(() => controller.abort());
  let r;
  try {
    r = await py.runPythonModule(python, "activeflow_distill", args, log, controller.signal, launch);
  } finally {
    off();
  }
  if (r.code !== 0) {
    // The tool has printed its one-line error on stderr already.
    throw new ActiveflowError("DISTILL", `${procs > 1 ? "torchrun" : "python"} -m activeflow_distill exited with code ${r.code}`);
  }
  const last = r.stdout.trim().split("\n").pop() ?? "";
  let summary: Record<string, unknown>;
  try {
    summary = JSON.parse(last) as Record<string, unknown>;
  } catch {
    throw new ActiveflowError("DISTILL", `python -m activeflow_distill printed no summary (last line: ${last.slice(0, 200)})`);
  }
  summary.tokens_file = tokensFile;
  if (values.json === true) {
    ctx.stdout.write(`${jsonText(summary)}\n`);
    return 0;
  }
  const f = (x: unknown) => (typeof x === "number" ? x.toFixed(4) : String(x));
  ctx.stdout.write(
    `held-out KL(dense || sparse ${sparsity}): ${f(summary.val_kl_before)} -> ${f(summary.val_kl_after)} after ${String(summary.steps)} steps (${String(summary.stopped_by)})\n`,
  );
  ctx.stdout.write(`training curve: ${String(summary.curves)}\n`);
  ctx.stdout.write(`wrote ${String(summary.out)}\nnext: activeflow calibrate ${String(summary.out)} (its own thresholds), then eval or run it with --sparsity ${sparsity}\n`);
  return 0;
}

// Token ids for training, as an int32 file in the distill cache.
async function trainingTokens(ctx: CliContext, path: string, values: OptionValues): Promise<string> {
  const t = await import("../../distill/text.js");
  const { Engine } = await import("../../engine/Engine.js");
  const { defaultBackend } = await import("../../backends/default.js");
  const total = values.tokens ?? DEFAULT_TOKENS;
  const samples = Math.max(2, Math.ceil(total / SEQ_LEN));
  let userText: string | undefined;
  let files: { ids: string; text: string };
  if (values.text !== undefined) {
    userText = await readTextFile(values.text);
    const hash = createHash("sha256").update(userText).digest("hex").slice(0, 16);
    const dir = t.distillCacheDir(ctx.env);
    files = { ids: join(dir, `${basename(path)}.user-${hash}.n${total}.tokens.i32`), text: join(dir, `${basename(path)}.user-${hash}.txt`) };
  } else {
    files = await t.selfTextCachePaths(path, { samples, seqLen: SEQ_LEN, seed: 1 }, ctx.env);
  }
  if ((await t.loadCachedIds(files.ids)) !== undefined) {
    ctx.stderr.write(`training tokens: ${files.ids} (cached)\n`);
    return files.ids;
  }
  await mkdir(t.distillCacheDir(ctx.env), { recursive: true });
  const engine = await Engine.load(path, values.threads !== undefined ? { threads: values.threads } : {}, defaultBackend());
  const line = new ProgressLine(ctx.stderr);
  const controller = new AbortController();
  const off = ctx.onInterrupt(() => controller.abort());
  try {
    const text =
      userText !== undefined
        ? t.tokenizeUserText(engine, userText, SEQ_LEN, total)
        : await t.generateSelfText(engine, {
            samples,
            seqLen: SEQ_LEN,
            seed: 1,
            signal: controller.signal,
            onProgress: (f) => line.update(`writing training text with ${basename(path)}`, f),
          });
    line.done();
    if (text.ids.length < 2 * SEQ_LEN) {
      throw new ActiveflowError("BAD_ARGUMENT", `${values.text}: ${text.ids.length} tokens; distillation needs at least ${2 * SEQ_LEN}`);
    }
    await t.saveTrainingText(files, text);
    ctx.stderr.write(`training tokens: ${files.ids} (${text.ids.length} tokens, ${text.source})\n`);
  } finally {
    line.done();
    off();
    await engine.dispose();
  }
  return files.ids;
}
