// One budget-benchmark measurement in its own process, which bench/budget.ts places in a
// cgroup memory limit before exec: load, a short warm-up, then one timed greedy run that
// reports every token as it comes, so a run killed by the limit or the wall-time cap still
// says how far it got. Also the "prepare" step (convert + calibrate once, unlimited).
// Usage: node dist/bench/budgetWorker.js '<PrepareRequest | RunRequest JSON>'
import {
  EVENT_MARKER,
  PREPARE_MARKER,
  type BudgetEvent,
  type PrepareRequest,
  type PrepareResult,
  type RunRequest,
} from "./lib/budgetTypes.js";
import { defaultBackend } from "../src/backends/default.js";

function emit(e: BudgetEvent): void {
  process.stdout.write(EVENT_MARKER + JSON.stringify(e) + "\n");
}

async function prepare(req: PrepareRequest): Promise<PrepareResult> {
  const { ensureConverted } = await import("../src/flash/cache.js");
  const { openFlashModel } = await import("../src/flash/open.js");
  const { weightBytesOf } = await import("../src/memory/budget.js");
  const { loadCalibration, saveCalibration, calibrationPath } = await import("../src/sparsity/store.js");
  const log = (s: string) => process.stderr.write(s + "\n");
  // Random weights: speed only, so keep their Q4_0 columns (the same bytes llama.cpp reads).
  const synthetic = /synth-/.test(req.modelPath);
  const convertedPath = await ensureConverted(defaultBackend(), req.modelPath, { log, ...(synthetic ? { keepSourceType: true } : {}) });
  const weightBytes = weightBytesOf(await openFlashModel(convertedPath));
  let calibration: string;
  if (await loadCalibration(convertedPath)) calibration = `existing ${calibrationPath(convertedPath)}`;
  else if (await loadCalibration(req.modelPath)) calibration = `existing ${calibrationPath(req.modelPath)}`;
  else {
    const { Engine } = await import("../src/index.js");
    const { calibrate } = await import("../src/sparsity/calibrate.js");
    log(`calibrating ${req.modelPath} (dense, ${req.tokensPerPrompt} self-generated tokens per prompt) ...`);
    const engine = await Engine.load(req.modelPath, { threads: 1 });
    const table = await calibrate(engine, { tokensPerPrompt: req.tokensPerPrompt });
    await engine.dispose();
    calibration = `new ${await saveCalibration(req.modelPath, table)} (${table.source})`;
  }
  return { convertedPath, weightBytes, calibration };
}

async function runOurs(req: RunRequest): Promise<void> {
  const { Engine } = await import("../src/index.js");
  const t0 = performance.now();
  const engine = await Engine.load(req.modelPath, {
    threads: req.threads,
    contextLength: req.contextLength,
    sparsity: req.sparsity ?? 0,
    ...(req.dram !== undefined ? { dram: req.dram } : {}),
    ...(/synth-/.test(req.modelPath) ? { keepSourceType: true } : {}),
  });
  emit({ ev: "loaded", loadSeconds: (performance.now() - t0) / 1000 });
  const opts = { greedy: true, stopAtEos: false, addSpecial: false } as const;
  const warm = engine.generate(req.warmupIds, { ...opts, maxTokens: req.warmupTokens });
  while (!(await warm.next()).done);
  emit({ ev: "warm" });
  const it = engine.generate(req.promptIds, { ...opts, maxTokens: req.decodeTokens });
  const tStart = performance.now();
  let tFirst = tStart;
  let n = 0;
  for (;;) {
    const r = await it.next();
    if (r.done) {
      const flash = r.value.flash;
      emit({ ev: "done", isa: engine.isa, ...(flash ? { flash } : {}) });
      break;
    }
    n++;
    const now = performance.now();
    if (n === 1) {
      tFirst = now;
      emit({ ev: "first", prefillSeconds: (now - tStart) / 1000 });
    }
    const flash = engine.flashStats();
    emit({ ev: "token", n, decodeSeconds: (now - tFirst) / 1000, ...(flash ? { flash } : {}) });
  }
  await engine.dispose();
  emit({ ev: "disposed" });
}

async function runLlamaCpp(req: RunRequest): Promise<void> {
  const lib = await import("node-llama-cpp");
  const t0 = performance.now();
  const llama = await lib.getLlama({
    gpu: false,
    build: "never",
    logLevel: lib.LlamaLogLevel.error,
    maxThreads: req.threads,
    progressLogs: false,
  });
  // useMmap is its default; spelled out because the mmap'd page cache under the limit is
  // exactly what this benchmark compares against.
  const model = await llama.loadModel({ modelPath: req.modelPath, gpuLayers: 0, useMmap: true });
  const context = await model.createContext({
    contextSize: req.contextLength,
    batchSize: Math.max(req.promptIds.length, req.warmupIds.length, 1),
    threads: { ideal: req.threads, min: req.threads },
    sequences: 1,
  });
  const seq = context.getSequence();
  emit({ ev: "loaded", loadSeconds: (performance.now() - t0) / 1000 });
  type Token = import("node-llama-cpp").Token;
  let w = 0;
  for await (const _ of seq.evaluate(req.warmupIds as Token[], { temperature: 0 })) if (++w >= req.warmupTokens) break;
  await seq.clearHistory();
  emit({ ev: "warm" });
  const tStart = performance.now();
  let tFirst = tStart;
  let n = 0;
  for await (const _ of seq.evaluate(req.promptIds as Token[], req.sample ? { temperature: req.sample.temperature, seed: req.sample.seed } : { temperature: 0 })) {
    n++;
    const now = performance.now();
    if (n === 1) {
      tFirst = now;
      emit({ ev: "first", prefillSeconds: (now - tStart) / 1000 });
    }
    emit({ ev: "token", n, decodeSeconds: (now - tFirst) / 1000 });
    if (n >= req.decodeTokens) break;
  }
  emit({ ev: "done", isa: llama.systemInfo.trim() });
  await context.dispose();
  await model.dispose();
  await llama.dispose();
  emit({ ev: "disposed" });
}

async function main(): Promise<void> {
  const arg = process.argv[2];
  if (!arg) throw new Error("usage: budgetWorker.js '<PrepareRequest | RunRequest JSON>'");
  const req = JSON.parse(arg) as PrepareRequest | RunRequest;
  if (req.op === "prepare") process.stdout.write(PREPARE_MARKER + JSON.stringify(await prepare(req)) + "\n");
  else if (req.engine === "ours") await runOurs(req);
  else await runLlamaCpp(req);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
