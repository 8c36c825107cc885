// `activeflow run <model> -p <prompt>`: raw completion, no chat template.
import type { OptionValues } from "../args.js";
import type { CliContext } from "./context.js";
import { exitCodeFor, generateOptions, reportGeneration, streamGeneration } from "./generate.js";
import { engineLoadOptions, resolveModelPath } from "./model.js";

export async function runCommand(ctx: CliContext, model: string, values: OptionValues): Promise<number> {
  const prompt = values.prompt ?? "";
  const path = await resolveModelPath(model, ctx);
  const load = await engineLoadOptions(ctx, path, values, { prompt });
  let engine;
  try {
    engine = await ctx.loadEngine(path, load.options);
  } finally {
    load.done();
  }
  try {
    const choice = generateOptions(values);
    const json = values.json === true;
    const result = await streamGeneration(
      ctx,
      (signal) => engine.generate(prompt, { ...choice.options, signal }),
      choice,
      json,
    );
    reportGeneration(ctx, result, json);
    return exitCodeFor(result);
  } finally {
    await engine.dispose();
  }
}
