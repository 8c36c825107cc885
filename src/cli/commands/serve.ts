// `activeflow serve <model>`: the OpenAI-compatible HTTP server (src/server). It listens first,
// so /health answers 503 while the model loads, then serves until SIGTERM or Ctrl-C, lets the
// running and queued generations finish, and exits 0.
import { basename } from "node:path";
import { isActiveflowError } from "../../errors.js";
import { ApiServer } from "../../server/app.js";
import { API_KEY_ENV, DEFAULT_HOST, DEFAULT_MAX_QUEUE, DEFAULT_PORT, DRAIN_SECONDS } from "../../server/defaults.js";
import type { ServerEngine } from "../../server/engine.js";
import type { OptionValues } from "../args.js";
import type { CliContext, EngineLike } from "./context.js";
import { engineLoadOptions, resolveModelPath, warnAboveTrainedContext } from "./model.js";
import { MiB } from "./table.js";

export async function serveCommand(ctx: CliContext, model: string, values: OptionValues): Promise<number> {
  const path = await resolveModelPath(model, ctx);
  const modelId = basename(path).replace(/\.gguf$/i, "");
  const envKey = ctx.env[API_KEY_ENV];
  const apiKey = values.apiKey ?? (envKey !== undefined && envKey !== "" ? envKey : undefined);
  const log = (line: string) => ctx.stderr.write(`${line}\n`);
  const server = new ApiServer({ modelId, apiKey, maxQueue: values.maxQueue ?? DEFAULT_MAX_QUEUE, budgeted: values.dram !== undefined, log });
  const address = await server.listen(values.host ?? DEFAULT_HOST, values.port ?? DEFAULT_PORT);
  ctx.stdout.write(values.json === true ? `${JSON.stringify({ ...address, model: modelId })}\n` : `${address.url}\n`);
  log(`listening on ${address.url}${apiKey !== undefined ? " (API key required)" : ""}; loading ${modelId}`);

  // Either signal stops the server (a second one cancels what is running) and a load in progress.
  const loading = new AbortController();
  const stop = () => {
    if (!server.stopping) log(`stopping: finishing running and queued requests (up to ${DRAIN_SECONDS} s)`);
    loading.abort();
    void server.stop(DRAIN_SECONDS * 1000);
  };
  const offInt = ctx.onInterrupt(stop);
  const offTerm = ctx.onTerminate?.(stop);
  let engine: EngineLike | undefined;
  try {
    const load = await engineLoadOptions(ctx, path, values, undefined);
    load.options.signal = loading.signal;
    if (values.watchMemory === true) load.options.watchMemory = { log };
    try {
      engine = await ctx.loadEngine(path, load.options);
    } catch (e) {
      if (loading.signal.aborted && isActiveflowError(e) && e.code === "ABORTED") {
        await server.stop(0);
        return 0;
      }
      await server.stop(0);
      throw e;
    } finally {
      load.done();
    }
    warnAboveTrainedContext(ctx, engine, values);
    if (!server.stopping) {
      server.setEngine(serverEngine(engine));
      const budget = engine.dramBudget !== undefined && values.dram !== undefined ? `, DRAM budget ${(engine.dramBudget / MiB).toFixed(1)} MiB` : "";
      log(`ready: ${modelId}, context ${engine.contextLength} tokens${budget}`);
    }
    await server.stopped; // a signal's stop has drained the requests
    return 0;
  } finally {
    offInt();
    offTerm?.();
    await engine?.dispose();
  }
}

// The CLI's engine as the server needs it (the real engine has all of it).
function serverEngine(engine: EngineLike): ServerEngine {
  if (engine.contextLength === undefined || engine.tokenizer === undefined) {
    throw new Error("serve needs an engine with a context length and a tokenizer");
  }
  return engine as ServerEngine;
}
