// Active-set traces of the real engine, for the cache and layout simulator (bench/cachesim.ts).
// The model runs from its flash layout (the columns the --dram engine computes with) at the
// given sparsity, with a budget large enough that nothing is evicted; the native
// ActivationStats records, for every evaluated row and every (layer, site), which input
// channels were active. Three traces, written as <out>/<name>.trace.{json,bin}:
//  - calib: the calibration text exactly as `activeflow calibrate` makes it (the dense model's
//    continuations of the 16 built-in prompts, seed 1234 + i, temperature 0.8, top-k 40),
//    teacher-forced. The only trace that may tune anything (hot sets, orders).
//  - eval: prompts in other registers (story, code, instructions, facts, chat through the
//    chat template), each generated greedily and sampled, `--tokens` tokens each.
//  - engine (part "engine"): one greedy generation under the real budget (--dram 35%), with the
//    engine's own cache counters, so bench/cachesim.ts can check its replay of today's policy.
//  - wiki (part "wiki"): --wiki-tokens N tokens of wiki.test.raw, teacher-forced, labelled
//    evaluation-wiki: evaluation only.
//
// Usage: node dist/bench/traces.js --out DIR [--model path.gguf] [--sparsity 0.5] [--tokens 192]
//        [--calib-tokens 64] [--calib-name calib] [--wiki-tokens 1024] [--parts calib,eval,wiki] [--threads 1]
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { Engine } from "../src/index.js";
import { modelsDir } from "../src/fetch/cache.js";
import { calibrationText } from "../src/sparsity/calibrate.js";
import { loadCalibration } from "../src/sparsity/store.js";
import type { ChatMessage } from "../src/tokenizer/types.js";
import { repoRoot } from "./lib/paths.js";
import { TRACE_VERSION, TraceBuilder, writeTrace, type TraceHeader, type TraceSequence, type TraceUse } from "./lib/traceFile.js";

const { values } = parseArgs({
  options: {
    out: { type: "string", default: join(tmpdir(), "activeflow-traces") },
    model: { type: "string" },
    sparsity: { type: "string", default: "0.5" },
    tokens: { type: "string", default: "192" },
    "calib-tokens": { type: "string", default: "64" },
    "wiki-tokens": { type: "string", default: "1024" },
    threads: { type: "string", default: "1" },
    parts: { type: "string", default: "calib,eval" },
    "calib-name": { type: "string", default: "calib" },
  },
});
const source = resolve(values.model ?? join(modelsDir(), "SmolLM2-135M-Instruct.Q4_1.gguf"));
const out = resolve(values.out!);
const sparsity = Number(values.sparsity);
const genTokens = Number(values.tokens);
const calibTokens = Number(values["calib-tokens"]);
const wikiTokens = Number(values["wiki-tokens"]);
const threads = Number(values.threads);
const parts = new Set(values.parts!.split(","));
const log = (s: string) => process.stderr.write(`${s}\n`);

// Evaluation prompts: registers the calibration prompts do not share verbatim.
interface EvalPrompt {
  register: string;
  prompt?: string;
  chat?: ChatMessage[];
}
const EVAL_PROMPTS: EvalPrompt[] = [
  { register: "story", prompt: "The old lighthouse keeper had not spoken to anyone in years, until one stormy night" },
  { register: "code", prompt: "import numpy as np\n\ndef kmeans(points, k, iterations=100):\n    \"\"\"Cluster points into k groups.\"\"\"\n" },
  { register: "instructions", prompt: "How to change a flat tyre on a bicycle, step by step:\n1." },
  { register: "facts", prompt: "The Amazon River is the largest river in the world by discharge. It flows through" },
  { register: "chat", chat: [{ role: "user", content: "Can you explain how vaccines train the immune system? Please answer in a few paragraphs." }] },
];
const SAMPLED = { temperature: 0.8, topK: 40, topP: 0.95, seedBase: 4321 };

mkdirSync(out, { recursive: true });
const table = await loadCalibration(source);
if (!table) throw new Error(`${source} has no calibration table; run \`activeflow calibrate\` on it first`);

// 1. The calibration text, made by the dense model as `activeflow calibrate` makes it.
if (parts.has("calib")) log(`calibration text: 16 prompts x ${calibTokens} tokens (dense model) ...`);
let calib: Awaited<ReturnType<typeof calibrationText>> | undefined;
if (parts.has("calib")) {
  const dense = await Engine.load(source, { threads });
  calib = await calibrationText(dense, { tokensPerPrompt: calibTokens });
  await dense.dispose();
}

// 2. The flash engine at the sparsity, with room for every column (nothing evicted).
const engine = await Engine.load(source, { dram: "1000%", sparsity, threads, log });
const flashPath = engine.path;
const columnTypes = engine.flash!.sites.map((s) => s.columnType);

function header(use: TraceUse, b: TraceBuilder, sequences: TraceSequence[], notes: string[]): TraceHeader {
  return {
    version: TRACE_VERSION, use, model: flashPath, source, columnTypes, sparsity,
    calibration: { ...(table!.method !== undefined ? { method: table!.method } : {}), source: table!.source, tokens: table!.calibrationTokens },
    nLayer: b.nLayer, widths: b.widths, rowBytes: b.rowBytes, rows: b.rows, passes: b.passes, sequences,
    createdAt: new Date().toISOString(), notes,
  };
}

function take(b: TraceBuilder, seq: Omit<TraceSequence, "firstRow" | "rows" | "firstPass" | "passes" | "prefillRows" | "freshContext">): TraceSequence {
  const firstRow = b.rows, firstPass = b.passes.length;
  b.add(engine.takeActivationTrace());
  const rows = b.rows - firstRow;
  // Generation evaluates every generated token but the last.
  const prefillRows = seq.mode === "teacher-forced" ? rows : rows - Math.max(0, seq.generatedTokens - 1);
  return { ...seq, firstRow, rows, firstPass, passes: b.passes.length - firstPass, prefillRows, freshContext: prefillRows === seq.promptTokens };
}

async function teacherForced(use: TraceUse, name: string, register: string, windows: number[][], notes: string[]): Promise<void> {
  const b = new TraceBuilder();
  const seqs: TraceSequence[] = [];
  engine.setActivationCapture(false, true, true);
  for (const [i, w] of windows.entries()) {
    await engine.evaluateLogits(w);
    seqs.push(take(b, { name: `${register}-${i}`, register, mode: "teacher-forced", promptTokens: w.length, generatedTokens: 0 }));
  }
  engine.setActivationCapture(false, false, true);
  writeTrace(join(out, name), header(use, b, seqs, notes), b.bits());
  log(`${name}: ${b.rows} rows, ${b.passes.length} passes -> ${join(out, name)}.trace.{json,bin}`);
}

if (calib) {
  await teacherForced("calibration", values["calib-name"]!, "calibration", calib.windows, [
    `calibration text: ${calib.source}, made by the dense model (seed 1234 + prompt index), evaluated teacher-forced by the flash engine at sparsity ${sparsity}`,
  ]);
}

// 3. Evaluation: each prompt generated greedily and sampled.
if (parts.has("eval")) {
  const b = new TraceBuilder();
  const seqs: TraceSequence[] = [];
  engine.setActivationCapture(false, true, true);
  for (const [pi, p] of EVAL_PROMPTS.entries()) {
    for (const mode of ["greedy", "sampled"] as const) {
      const opts = {
        maxTokens: genTokens, stopAtEos: false,
        ...(mode === "greedy" ? { greedy: true } : { temperature: SAMPLED.temperature, topK: SAMPLED.topK, topP: SAMPLED.topP, seed: SAMPLED.seedBase + pi }),
      };
      const gen = p.chat ? engine.chat(p.chat, opts) : engine.generate(p.prompt!, opts);
      let text = "";
      let r = await gen.next();
      while (!r.done) {
        text += r.value.text;
        r = await gen.next();
      }
      const stats = r.value;
      seqs.push(take(b, { name: `${p.register}-${mode}`, register: p.register, mode, promptTokens: stats.promptTokens, generatedTokens: stats.generatedTokens, text }));
      log(`eval ${p.register} ${mode}: ${stats.promptTokens} + ${stats.generatedTokens} tokens`);
    }
  }
  engine.setActivationCapture(false, false, true);
  writeTrace(join(out, "eval"), header("evaluation", b, seqs, [
    `generation by the flash engine at sparsity ${sparsity}, ${genTokens} tokens per sequence, stopAtEos false (a sequence runs past an end-of-turn token)`,
    `sampled: temperature ${SAMPLED.temperature}, top-k ${SAMPLED.topK}, top-p ${SAMPLED.topP}, seed ${SAMPLED.seedBase} + prompt index`,
  ]), b.bits());
  log(`eval: ${b.rows} rows, ${b.passes.length} passes`);
}

// 4. wiki.test.raw: evaluation only, labelled as such.
if (parts.has("wiki")) {
  const wiki = join(repoRoot(), "..", "shared", "data", "wikitext-2-raw", "wiki.test.raw");
  if (!existsSync(wiki)) throw new Error(`${wiki} not found`);
  // From the second article on (the first is the most quoted), in 512-token windows.
  const text = readFileSync(wiki, "utf8");
  const from = text.indexOf("\n = ", 100);
  const ids = engine.tokenizer.encode(text.slice(from, from + wikiTokens * 8)).slice(0, wikiTokens);
  const windows: number[][] = [];
  for (let i = 0; i < ids.length; i += 512) windows.push(ids.slice(i, i + 512));
  await teacherForced("evaluation-wiki", "wiki", "wiki", windows, [
    "wiki.test.raw (evaluation text: never for calibration or tuning), teacher-forced in 512-token windows",
  ]);
}
await engine.dispose();

// 5. The engine under the budget, its counters beside the trace.
if (parts.has("engine")) {
  const e = await Engine.load(source, { dram: "35%", sparsity, threads, contextLength: 256 });
  const b = new TraceBuilder();
  e.setActivationCapture(false, true, true);
  const gen = e.generate(EVAL_PROMPTS[0]!.prompt!, { maxTokens: 128, greedy: true, stopAtEos: false });
  let r = await gen.next();
  while (!r.done) r = await gen.next();
  const stats = r.value;
  b.add(e.takeActivationTrace());
  const f = e.flashStats()!;
  const rows = b.rows;
  const seq: TraceSequence = {
    name: "engine-35", register: "story", mode: "greedy", firstRow: 0, rows, firstPass: 0, passes: b.passes.length,
    promptTokens: stats.promptTokens, generatedTokens: stats.generatedTokens, prefillRows: stats.promptTokens, freshContext: true,
  };
  const raw = (e as unknown as { model: { flashStats(): { lookups?: number; hits?: number; cacheBytes?: number } } }).model.flashStats();
  const h = { ...header("engine-check", b, [seq], ["one greedy generation under --dram 35% (context 256), counters from the engine"]) };
  h.engine = { dram: "35%", cacheBytes: raw.cacheBytes ?? 0, lookups: raw.lookups ?? 0, hits: raw.hits ?? 0, cacheHitRate: f.cacheHitRate };
  writeTrace(join(out, "engine35"), h, b.bits());
  log(`engine35: ${rows} rows, engine hit rate ${f.cacheHitRate.toFixed(4)} (${raw.hits}/${raw.lookups}), cache ${raw.cacheBytes} bytes`);
  await e.dispose();
}
