// `activeflow eval <model> --text <file>`: teacher-forced perplexity, KL(dense || sparse) and
// top-1 agreement of the model at a sparsity level against itself dense. With --sparsity auto
// and a quality floor, the level is the highest the floor allows, scored against what calibrate
// predicted for it.
import { basename } from "node:path";
import { ActiveflowError } from "../../errors.js";
import { readTextFile } from "./input.js";
import type { OptionValues } from "../args.js";
import { jsonText, tuningQuality } from "../output.js";
import { ProgressLine } from "../progress.js";
import type { CliContext } from "./context.js";
import { resolveModelPath } from "./model.js";
import { formatTable } from "./table.js";
import { describeFloor, floorLevel, predictedQuality, qualityOf, type QualityFloor } from "../../sparsity/qualityFloor.js";

export async function evalCommand(ctx: CliContext, model: string, values: OptionValues): Promise<number> {
  const path = await resolveModelPath(model, ctx);
  let sparsity = values.sparsity ?? 0;
  const auto = values.autoSparsity === true;
  const maxTokens = values.maxTokens ?? 4096;
  const window = values.window ?? 512;
  const text = await readTextFile(values.text!);
  const { loadCalibration, calibrationPath } = await import("../../sparsity/store.js");
  const { thresholdsFor } = await import("../../sparsity/thresholds.js");
  let thresholds: Float32Array | null = null;
  let norms: Float32Array | null = null; // a weight-aware table's column norms
  // --sparsity auto: the level the floor allows, and what calibration measured there.
  let chosen: { floor: QualityFloor; kl: number; top1: number } | undefined;
  if (sparsity > 0 || auto) {
    const table = await loadCalibration(path);
    if (!table) {
      throw new ActiveflowError(
        "BAD_ARGUMENT",
        `${path}: sparsity ${auto ? "auto" : sparsity} needs the calibration table ${calibrationPath(path)}, which does not exist; run \`activeflow calibrate ${model}\` first`,
      );
    }
    if (auto) {
      const floor = { ...(values.maxKl !== undefined ? { maxKl: values.maxKl } : {}), ...(values.minTop1 !== undefined ? { minTop1: values.minTop1 } : {}) };
      const quality = qualityOf(table, model);
      const level = floorLevel(table.levels, quality, floor);
      if (level === undefined) throw new ActiveflowError("BAD_ARGUMENT", `${path}: no calibrated sparsity level meets the quality floor ${describeFloor(floor)}`);
      sparsity = level;
      chosen = { floor, ...predictedQuality(table.levels, quality, level)! };
    }
    if (sparsity > 0) thresholds = thresholdsFor(table, sparsity);
    if (table.selection === "weight") norms = table.columnNorms!;
  }
  const { Engine } = await import("../../engine/Engine.js");
  const { defaultBackend } = await import("../../backends/default.js");
  const { evaluateQuality } = await import("../../eval/quality.js");
  const load = (p: string) => Engine.load(p, { contextLength: window, ...(values.threads !== undefined ? { threads: values.threads } : {}) }, defaultBackend());
  const refPath = values.reference !== undefined ? await resolveModelPath(values.reference, ctx) : undefined;
  const engine = await load(path);
  engine.setColumnNorms(norms);
  let reference: Awaited<ReturnType<typeof load>> | undefined;
  if (refPath !== undefined) {
    try {
      reference = await load(refPath);
    } catch (e) {
      await engine.dispose();
      throw e;
    }
    if (reference.config.nVocab !== engine.config.nVocab) {
      const [a, b] = [engine.config.nVocab, reference.config.nVocab];
      await engine.dispose();
      await reference.dispose();
      throw new ActiveflowError("BAD_ARGUMENT", `--reference ${values.reference}: its vocabulary has ${b} tokens, ${model} has ${a}; they must be the same model family`);
    }
  }
  const line = new ProgressLine(ctx.stderr);
  const controller = new AbortController();
  const off = ctx.onInterrupt(() => controller.abort());
  let q;
  try {
    // Long texts: tokenise a generous prefix only (a token is rarely over 16 characters).
    const ids = engine.tokenizer.encode(text.length > maxTokens * 16 ? text.slice(0, maxTokens * 16) : text).slice(0, maxTokens);
    if (ids.length < 2) throw new ActiveflowError("BAD_ARGUMENT", `${values.text}: ${ids.length} token(s); eval needs at least 2`);
    q = await evaluateQuality(engine, ids, thresholds, {
      window,
      ...(reference ? { reference } : {}),
      signal: controller.signal,
      onProgress: (f) => line.update(`evaluating ${basename(path)} at sparsity ${sparsity}`, f),
    });
    line.done();
  } catch (e) {
    line.done();
    throw e;
  } finally {
    off();
    await engine.dispose();
    await reference?.dispose();
  }
  const [attnIn, attnOut, ffnIn, ffnOut] = q.active_fraction;
  const active = { q: attnIn!, k: attnIn!, v: attnIn!, o: attnOut!, gate: ffnIn!, up: ffnIn!, down: ffnOut! };
  const record = {
    ppl: q.ppl, ppl_dense: q.ppl_dense, kl_to_dense: q.kl_to_dense, top1_agreement: q.top1_agreement,
    tokens: q.tokens, sparsity, window, active_fraction: active, ...(refPath !== undefined ? { reference: refPath } : {}),
    ...(chosen ? { tuning: { sparsity, ...tuningQuality({ predictedKl: chosen.kl, predictedTop1: chosen.top1, floor: chosen.floor }) } } : {}),
  };
  if (values.json === true) {
    ctx.stdout.write(`${jsonText(record)}\n`);
    return 0;
  }
  ctx.stdout.write(
    formatTable(
      ["sparsity", "tokens", "ppl", "ppl_dense", "kl_to_dense", "top1_agreement"],
      [[String(sparsity), String(q.tokens), q.ppl.toFixed(3), q.ppl_dense.toFixed(3), q.kl_to_dense.toFixed(5), q.top1_agreement.toFixed(4)]],
    ),
  );
  if (chosen) {
    ctx.stdout.write(`auto: sparsity ${sparsity}, the highest level meeting ${describeFloor(chosen.floor)} on the calibration text (KL ${chosen.kl.toFixed(5)}, top-1 ${chosen.top1.toFixed(4)} there)\n`);
  }
  ctx.stdout.write(`active fraction: q/k/v ${active.q.toFixed(3)}, o ${active.o.toFixed(3)}, gate/up ${active.gate.toFixed(3)}, down ${active.down.toFixed(3)}\n`);
  return 0;
}
