// One pipeline-benchmark measurement in its own process (placed in a cgroup memory limit by
// bench/pipeline.ts before exec): load a flash file, generate 1 + N greedy tokens from a short
// fixed prompt, and report the backend's raw counters at the first token and at the last.
// Usage: node dist/bench/lib/pipelineWorker.js '<PipelineRequest JSON>'
import type { BackendFlashStats, BackendModel } from "../../src/backend/Backend.js";
import { PIPELINE_MARKER, type PipelineEvent, type PipelineRequest } from "./pipelineTypes.js";

function emit(e: PipelineEvent): void {
  process.stdout.write(PIPELINE_MARKER + JSON.stringify(e) + "\n");
}

async function main(): Promise<void> {
  const arg = process.argv[2];
  if (!arg) throw new Error("usage: pipelineWorker.js '<PipelineRequest JSON>'");
  const req = JSON.parse(arg) as PipelineRequest;
  const { Engine } = await import("../../src/index.js");
  const t0 = performance.now();
  const engine = await Engine.load(req.modelPath, {
    threads: req.threads,
    contextLength: req.contextLength,
    sparsity: req.sparsity,
    dram: req.dram,
    preload: req.preload,
    readAhead: req.readAhead ?? false,
    ...(req.predictMargin !== undefined ? { predictMargin: req.predictMargin } : {}),
    ...(req.cachePolicy !== undefined ? { cachePolicy: req.cachePolicy } : {}),
    ...(req.readGap !== undefined ? { readGap: req.readGap } : {}),
    ...(req.pregate !== undefined ? { pregate: req.pregate } : {}),
  });
  emit({ ev: "loaded", loadSeconds: (performance.now() - t0) / 1000 });
  // The engine keeps its backend model private; the raw counters (activeBytes, per-source
  // bytes and waits) are what make an exact decode-only difference possible.
  const backend = (engine as unknown as { live(): BackendModel }).live();
  // A typed array would serialise as an object of indices: send per-layer counts as a plain array.
  const raw = (): BackendFlashStats => {
    const f = backend.flashStats(false) as BackendFlashStats & { predictionByLayer?: ArrayLike<number> };
    // MoE models: the expert store's counters ride along (bench/moe.ts takes their decode part).
    const experts = backend.expertStats(false);
    const g = experts ? { ...f, experts } : f;
    return g.predictionByLayer ? ({ ...g, predictionByLayer: Array.from(g.predictionByLayer) } as unknown as BackendFlashStats) : g;
  };
  const it = engine.generate(req.promptIds, { ...(req.sample ? { temperature: req.sample.temperature, seed: req.sample.seed } : { greedy: true }), stopAtEos: false, addSpecial: false, maxTokens: req.decodeTokens + 1 });
  const tStart = performance.now();
  let tFirst = tStart, tLast = tStart;
  let atFirst: BackendFlashStats | undefined, atLast: BackendFlashStats | undefined;
  const tokens: number[] = [];
  for (;;) {
    const r = await it.next();
    if (r.done) {
      if (!atFirst || !atLast) throw new Error(`generation stopped after ${tokens.length} tokens (${r.value.stopReason})`);
      emit({
        ev: "done", isa: engine.isa, tokens, prefillSeconds: (tFirst - tStart) / 1000, decodeSeconds: (tLast - tFirst) / 1000,
        decodeTokens: tokens.length - 1, atFirst, atLast, run: r.value.flash, peakRssBytes: r.value.peakRssBytes,
      });
      break;
    }
    tokens.push(r.value.id);
    tLast = performance.now();
    if (tokens.length === 1) {
      tFirst = tLast;
      atFirst = raw();
      emit({ ev: "first", prefillSeconds: (tFirst - tStart) / 1000 });
    } else {
      emit({ ev: "token", n: tokens.length, decodeSeconds: (tLast - tFirst) / 1000 });
    }
    atLast = raw();
  }
  await engine.dispose();
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
