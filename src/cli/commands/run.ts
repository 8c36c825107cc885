// `activeflow run <model> -p <prompt>`: raw completion, no chat template.
import type { OptionValues } from "../args.js";
import type { CliContext } from "./context.js";
import { exitCodeFor, generateOptions, reportGeneration, streamGeneration } from "./generate.js";
import { engineLoadOptions, resolveModelPath, warnAboveTrainedContext } from "./model.js";
import { ScheduledRun, scheduleLoadOptions, scheduleValues } from "./dramSchedule.js";
import { readTextArg } from "./input.js";
import { readJsonSchema } from "./jsonSchema.js";

export async function runCommand(ctx: CliContext, model: string, given: OptionValues): Promise<number> {
  if (given.jsonSchema !== undefined) given.schema = await readJsonSchema(given.jsonSchema);
  const path = await resolveModelPath(model, ctx);
  const prompt = given.file !== undefined ? await readTextArg(ctx, given.file, "prompt") : given.prompt ?? "";
  const { values, schedule } = scheduleValues(given);
  const load = await engineLoadOptions(ctx, path, values, { prompt });
  if (schedule) scheduleLoadOptions(load.options, schedule);
  if (values.watchMemory === true) load.options.watchMemory = { log: (line) => ctx.stderr.write(`${line}\n`) };
  let engine;
  try {
    engine = await ctx.loadEngine(path, load.options);
  } finally {
    load.done();
  }
  warnAboveTrainedContext(ctx, engine, values);
  try {
    const choice = generateOptions(values);
    const json = values.json === true;
    const scheduled = schedule ? new ScheduledRun(ctx, engine, schedule) : undefined;
    const result = await streamGeneration(
      ctx,
      (signal) => {
        const gen = engine.generate(prompt, { ...choice.options, signal });
        return scheduled ? scheduled.wrap(gen) : gen;
      },
      choice,
      json,
    );
    if (scheduled) scheduled.report(result, json);
    else reportGeneration(ctx, result, json);
    return exitCodeFor(result);
  } finally {
    await engine.dispose();
  }
}
