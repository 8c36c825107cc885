// `activeflow eval <model> --text <file>`: teacher-forced perplexity, KL(dense || sparse) and
// top-1 agreement of the model at a sparsity level against itself dense.
import { basename } from "node:path";
import { ActiveflowError } from "../../errors.js";
import { readTextFile } from "./input.js";
import type { OptionValues } from "../args.js";
import { jsonText } from "../output.js";
import { ProgressLine } from "../progress.js";
import type { CliContext } from "./context.js";
import { resolveModelPath } from "./model.js";
import { formatTable } from "./table.js";

export async function evalCommand(ctx: CliContext, model: string, values: OptionValues): Promise<number> {
  const path = await resolveModelPath(model, ctx);
  const sparsity = values.sparsity ?? 0;
  const maxTokens = values.maxTokens ?? 4096;
  const window = values.window ?? 512;
  const text = await readTextFile(values.text!);
  const { loadCalibration, calibrationPath } = await import("../../sparsity/store.js");
  const { thresholdsFor } = await import("../../sparsity/thresholds.js");
  let thresholds: Float32Array | null = null;
  let norms: Float32Array | null = null; // a weight-aware table's column norms
  if (sparsity > 0) {
    const table = await loadCalibration(path);
    if (!table) {
      throw new ActiveflowError(
        "BAD_ARGUMENT",
        `${path}: sparsity ${sparsity} needs the calibration table ${calibrationPath(path)}, which does not exist; run \`activeflow calibrate ${model}\` first`,
      );
    }
    thresholds = thresholdsFor(table, sparsity);
    if (table.selection === "weight") norms = table.columnNorms!;
  }
  const { Engine } = await import("../../engine/Engine.js");
  const { evaluateQuality } = await import("../../eval/quality.js");
  const load = (p: string) => Engine.load(p, { contextLength: window, ...(values.threads !== undefined ? { threads: values.threads } : {}) });
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
  ctx.stdout.write(`active fraction: q/k/v ${active.q.toFixed(3)}, o ${active.o.toFixed(3)}, gate/up ${active.gate.toFixed(3)}, down ${active.down.toFixed(3)}\n`);
  return 0;
}
