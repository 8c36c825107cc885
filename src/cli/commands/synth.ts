// `activeflow synth --shape <name> <out.gguf>`: a random-weight model of a real shape, with a
// progress bar; the writer renames a temporary file into place, so the output is atomic.
import { basename, resolve } from "node:path";
import type { OptionValues } from "../args.js";
import { ProgressLine } from "../progress.js";
import { ggmlTypeOf } from "./convert.js";
import type { CliContext } from "./context.js";
import { jsonText } from "../output.js";
import { stat } from "node:fs/promises";
import type { SynthMix } from "../../synth/synth.js";

export async function synthCommand(ctx: CliContext, output: string, values: OptionValues): Promise<number> {
  const { synthesizeModel } = await import("../../synth/synth.js");
  const outPath = resolve(output);
  const shape = values.shape!;
  const label = values.mix !== undefined ? `${values.type ?? "q4_0"}/${values.mix}` : values.type ?? "q4_0";
  const line = new ProgressLine(ctx.stderr);
  const controller = new AbortController();
  const off = ctx.onInterrupt(() => controller.abort());
  try {
    await synthesizeModel(shape, ggmlTypeOf(values.type ?? "q4_0"), outPath, {
      seed: values.seed ?? 1,
      ...(values.mix !== undefined ? { mix: values.mix as SynthMix } : {}),
      signal: controller.signal,
      onProgress: (done, total) => line.update(`writing ${basename(outPath)} (${shape}, ${label})`, total > 0 ? done / total : undefined),
    });
    line.done(`wrote ${basename(outPath)} (${shape}, ${label})`);
  } catch (e) {
    line.done();
    throw e;
  } finally {
    off();
  }
  ctx.stdout.write(values.json === true ? `${jsonText({ path: outPath, shape, type: values.type ?? "q4_0", mix: values.mix ?? null, bytes: (await stat(outPath)).size })}\n` : `${outPath}\n`);
  return 0;
}
