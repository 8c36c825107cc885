// `activeflow reorder <converted file> --sparsity s`: counts how often each input channel is
// active on the calibration text at that sparsity's thresholds and rewrites the file with every
// extent's records hottest first (or in channel order with --order identity), storing the order
// and the activities in its header (docs/FLASH_FORMAT.md section 12).
import { jsonText } from "../output.js";
import { basename } from "node:path";
import { ActiveflowError } from "../../errors.js";
import { readTextFile } from "./input.js";
import type { RecordOrder } from "../../flash/format.js";
import type { OptionValues } from "../args.js";
import { ProgressLine } from "../progress.js";
import { refuseEvaluationText } from "./calibrate.js";
import type { CliContext } from "./context.js";
import { resolveModelPath } from "./model.js";
import { formatTable } from "./table.js";

const BUILTIN_PROMPTS = 16;

export async function reorderCommand(ctx: CliContext, file: string, values: OptionValues): Promise<number> {
  if (values.text !== undefined) refuseEvaluationText(values.text);
  const sparsity = values.sparsity;
  if (sparsity === undefined || values.autoSparsity === true || !(sparsity > 0)) {
    throw new ActiveflowError("BAD_ARGUMENT", `reorder: --sparsity must be a number in (0, 1), got ${values.autoSparsity ? "auto" : String(sparsity ?? "nothing")}`);
  }
  const path = await resolveModelPath(file, ctx);
  const { openFlashModel } = await import("../../flash/open.js");
  const fm = await openFlashModel(path);
  // Reordering needs a calibration table, which MoE models cannot have yet: say so at once
  // instead of sending the user to calibrate, which refuses them.
  (await import("../../model/moe.js")).refuseMoe(fm.gguf, "reordering");
  const { loadCalibration } = await import("../../sparsity/store.js");
  const table = await loadCalibration(path);
  if (!table) throw new ActiveflowError("BAD_ARGUMENT", `${path}: has no calibration table; run \`activeflow calibrate ${path}\` first`);
  const text = values.text !== undefined ? await readTextFile(values.text) : undefined;
  const { Engine } = await import("../../engine/Engine.js");
  const { defaultBackend } = await import("../../backends/default.js");
  const { calibrationText, CALIBRATION_PROMPTS } = await import("../../sparsity/calibrate.js");
  const { channelActivity } = await import("../../sparsity/activity.js");
  const { reorderFlash } = await import("../../flash/reorder.js");
  const order = (values.order ?? "hot") as RecordOrder;
  const line = new ProgressLine(ctx.stderr);
  const controller = new AbortController();
  const off = ctx.onInterrupt(() => controller.abort());
  let report;
  try {
    const engine = await Engine.load(path, values.threads !== undefined ? { threads: values.threads } : {}, defaultBackend());
    let activity;
    let tokens = 0;
    try {
      const perPrompt = Math.ceil((values.tokens ?? BUILTIN_PROMPTS * 64) / CALIBRATION_PROMPTS.length);
      const calib = await calibrationText(engine, {
        ...(text !== undefined ? { text, maxTokens: values.tokens ?? 4096 } : { tokensPerPrompt: perPrompt }),
        signal: controller.signal,
        onProgress: (f, stage) => line.update(`reorder ${basename(path)}: ${stage}`, f),
      });
      tokens = calib.tokens;
      activity = await channelActivity(engine, table, sparsity, calib.windows, fm.groupSize, {
        signal: controller.signal,
        onProgress: (f) => line.update(`reorder ${basename(path)}: counting active channels`, f),
      });
    } finally {
      await engine.dispose();
    }
    report = await reorderFlash(path, activity, {
      order,
      signal: controller.signal,
      onProgress: (f) => line.update(`reorder ${basename(path)}: rewriting`, f),
    });
    line.done();
    report = { ...report, sparsity, calibrationTokens: tokens };
  } catch (e) {
    line.done();
    throw e;
  } finally {
    off();
  }
  if (values.json === true) {
    ctx.stdout.write(`${jsonText({
      path: report.path, order: report.order, sparsity, calibration_tokens: report.calibrationTokens, seconds: report.seconds,
      sites: report.sites.map((x) => ({ site: x.site, moved: x.moved, head_quarter_activity: x.headQuarterActivity })),
    })}\n`);
    return 0;
  }
  ctx.stdout.write(`record order ${report.order} from ${report.calibrationTokens} calibration tokens at sparsity ${sparsity}:\n`);
  ctx.stdout.write(formatTable(["site", "records moved", "activity in first quarter"],
    report.sites.map((s) => [s.site, `${(100 * s.moved).toFixed(1)} %`, `${(100 * s.headQuarterActivity).toFixed(1)} %`])));
  ctx.stdout.write(`saved ${path} (${report.seconds.toFixed(1)} s)\n`);
  return 0;
}
