// One measurement in its own process, so the two engines never share threads, memory or
// page-cache warmth beyond the file itself: load, warm up, then one timed greedy run.
// Usage: node dist/bench/lib/worker.js '<WorkerRequest JSON>'; prints RESULT_MARKER + JSON.
import { LlamaCppRef } from "../../test/helpers/llamacpp.js";
import type { Engine } from "../../src/engine/Engine.js";
import { RESULT_MARKER, type WorkerRequest, type WorkerResult } from "./types.js";

// Warm-up prompt: a short run that pages the weights in and spins up thread pools. Its first
// id differs from the measured prompt's so no KV prefix is reused.
const WARMUP_IDS = [11, 12, 13, 14];
const WARMUP_TOKENS = 4;

interface Timed {
  generated: number;
  firstTokenSeconds: number;
  decodeSeconds: number;
  stats?: unknown;
}

async function timeOurs(engine: Engine, ids: number[], n: number): Promise<Timed> {
  const it = engine.generate(ids, { greedy: true, maxTokens: n, stopAtEos: false, addSpecial: false });
  const t0 = performance.now();
  let tFirst = t0;
  let generated = 0;
  for (;;) {
    const r = await it.next();
    if (r.done) {
      const tEnd = performance.now();
      return { generated, firstTokenSeconds: (tFirst - t0) / 1000, decodeSeconds: (tEnd - tFirst) / 1000, stats: r.value };
    }
    generated++;
    if (generated === 1) tFirst = performance.now();
  }
}

async function runOurs(req: WorkerRequest): Promise<WorkerResult> {
  // Imported here, not at the top, so a llama.cpp worker never loads our engine or addon.
  const { Engine } = await import("../../src/index.js");
  const t0 = performance.now();
  const engine = await Engine.load(req.modelPath, { threads: req.threads, contextLength: req.contextLength });
  const loadSeconds = (performance.now() - t0) / 1000;
  await timeOurs(engine, WARMUP_IDS, WARMUP_TOKENS);
  const m = await timeOurs(engine, req.promptIds, req.decodeTokens);
  const isa = engine.isa;
  await engine.dispose();
  return result(req, loadSeconds, m, isa);
}

async function runLlamaCpp(req: WorkerRequest): Promise<WorkerResult> {
  const t0 = performance.now();
  const ref = await LlamaCppRef.load(req.modelPath, {
    threads: req.threads,
    contextSize: req.contextLength,
    batchSize: Math.max(req.promptIds.length, 1),
  });
  if (typeof ref === "string") throw new Error(ref);
  const loadSeconds = (performance.now() - t0) / 1000;
  await ref.greedy(WARMUP_IDS, WARMUP_TOKENS);
  const g = await ref.greedy(req.promptIds, req.decodeTokens);
  const isa = ref.systemInfo;
  await ref.dispose();
  return result(req, loadSeconds, { generated: g.ids.length, firstTokenSeconds: g.firstTokenSeconds, decodeSeconds: g.decodeSeconds }, isa);
}

function result(req: WorkerRequest, loadSeconds: number, m: Timed, isa: string): WorkerResult {
  const out: WorkerResult = {
    engine: req.engine,
    threads: req.threads,
    promptTokens: req.promptIds.length,
    generatedTokens: m.generated,
    loadSeconds,
    prefillTokensPerSecond: req.promptIds.length / m.firstTokenSeconds,
    decodeTokensPerSecond: m.generated > 1 ? (m.generated - 1) / m.decodeSeconds : 0,
    isa,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
  };
  if (m.stats !== undefined) out.engineStats = m.stats;
  return out;
}

async function main(): Promise<void> {
  const arg = process.argv[2];
  if (!arg) throw new Error("usage: worker.js '<WorkerRequest JSON>'");
  const req = JSON.parse(arg) as WorkerRequest;
  const res = req.engine === "ours" ? await runOurs(req) : await runLlamaCpp(req);
  process.stdout.write(RESULT_MARKER + JSON.stringify(res) + "\n");
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
