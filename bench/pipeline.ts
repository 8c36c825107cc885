// Issue 4's speed and prediction measurements.
// Part "speed": the random-weight 7B from its flash file at DRAM budgets (25 %, 50 %), each
// run in its own cgroup memory limit of budget + 256 MiB (page cache included, dropped first),
// with cross-layer preloading (--preload) and without (every miss on demand), alternating, >= 3
// runs each; decode tok/s medians, their ratio, decode-only bytes per token (the backend's
// counters at the first token subtracted), where active bytes came from, waits, the cgroup
// peak, and the roofline: 1 / max(flash bytes / our reader's bandwidth at the achieved mean
// read size and queue depth 8, DRAM bytes / single-thread memory bandwidth), both measured in
// this same invocation. Also the 7B's prediction precision / recall by distance.
// Part "recall": SmolLM2 (real activations) through `activeflow run --json` for several
// --predict-margin values and prompts: precision and recall per site and distance.
// Usage (root): npm run bench:pipeline -- [--part speed|recall|all] [--budgets 25%,50%] [--runs 3]
//   [--tokens 12] [--threads auto|1|2] [--model <.af.gguf>] [--margins 1,0.8,0.6,0.5,0.4]
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, renameSync, writeFileSync } from "node:fs";
import { homedir, loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { loadAddon } from "../src/backends/native/binding.js";
import { openFlashModel } from "../src/flash/open.js";
import { readGguf } from "../src/gguf/reader.js";
import { parseBudget, resolveBudget, weightBytesOf } from "../src/memory/budget.js";
import { readModelConfig } from "../src/model/config.js";
import { findCgroup, removeParent, type CgroupKind } from "./lib/budgetCgroup.js";
import { machineInfo } from "./lib/machine.js";
import { repoRoot } from "./lib/paths.js";
import { decodeNumbers, pooledPrediction, type DecodeNumbers } from "./lib/pipelineDecode.js";
import { meanPrediction, recallArgv, recallRun, type RecallRun } from "./lib/pipelineRecall.js";
import { measureMemoryBandwidth, readerBlockFor, roofline, type MemoryBandwidth } from "./lib/pipelineRoofline.js";
import { runWorkerInCgroup, waitForQuiet, type LoadGate, type WorkerRecord } from "./lib/pipelineRun.js";
import type { PipelineRequest } from "./lib/pipelineTypes.js";
import { measureReader, type ReaderPoint } from "./lib/readerBandwidth.js";
import { median, table, fixedIds } from "./lib/stats.js";

const MiB = 1 << 20;
const PARENT = `activeflow-pipeline-${process.pid}`;
const CACHE = join(homedir(), ".cache", "activeflow");

const { values: args } = parseArgs({
  options: {
    part: { type: "string", default: "speed" },
    model: { type: "string" },
    budgets: { type: "string", default: "25%,50%" },
    runs: { type: "string", default: "3" },
    tokens: { type: "string", default: "12" },
    "prompt-tokens": { type: "string", default: "4" },
    threads: { type: "string", default: "auto" },
    sparsity: { type: "string", default: "0.5" },
    "allowance-mb": { type: "string", default: "256" },
    nice: { type: "string", default: "-5" },
    "max-load": { type: "string", default: "2.5" },
    "max-wait-min": { type: "string", default: "20" },
    "io-seconds": { type: "string", default: "3" },
    cap: { type: "string", default: "900" },
    "recall-model": { type: "string", default: join(CACHE, "models", "SmolLM2-135M-Instruct.Q4_1.gguf") },
    "recall-tokens": { type: "string", default: "128" },
    "recall-dram": { type: "string", default: "35%" },
    margins: { type: "string", default: "1,0.8,0.6,0.5,0.4" },
    "recall-prompts": { type: "string", default: "3" },
    out: { type: "string" },
    report: { type: "string" },
  },
});

const log = (s: string) => process.stderr.write(s + "\n");
const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19) + "Z";
const f1 = (x: number) => x.toFixed(1), f2 = (x: number) => x.toFixed(2), f3 = (x: number) => x.toFixed(3);
const pct = (x: number | null) => (x === null ? "-" : `${(100 * x).toFixed(1)}`);

// Prompts of the recall part: different registers, so the prediction is not judged on one text.
const RECALL_PROMPTS = [
  "The history of the city begins in the Roman period, when",
  "To make a good loaf of bread at home, first",
  "Photosynthesis is the process by which plants",
  "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
  "Dear hiring manager, I am writing to apply for",
];

function defaultModel(): string {
  const dir = join(CACHE, "flash");
  const f = readdirSync(dir).find((n) => /^synth-llama2-7b-q4_0-.*\.g4\.af\.gguf$/.test(n));
  if (!f) throw new Error(`no group-size-4 flash file of synth-llama2-7b-q4_0 in ${dir}; pass --model <.af.gguf>`);
  return join(dir, f);
}

// The commit measured and whether native/ or src/ differ from it (others edit them meanwhile).
function sourceState(): { commit: string; dirty: string[] } {
  const git = (...a: string[]) => execFileSync("git", ["-C", repoRoot(), ...a], { encoding: "utf8" }).trim();
  try {
    return { commit: git("rev-parse", "HEAD"), dirty: git("status", "--short", "--", "native", "src").split("\n").filter(Boolean) };
  } catch {
    return { commit: "unknown", dirty: [] };
  }
}

function save(out: string, result: unknown): void {
  mkdirSync(join(out, ".."), { recursive: true });
  writeFileSync(`${out}.tmp`, JSON.stringify(result, null, 2) + "\n");
  renameSync(`${out}.tmp`, out);
}

type Config = "preload" | "on-demand";
interface SpeedRun {
  budget: string;
  config: Config;
  threads: number;
  round: number;
  pilot: boolean;
  gate: LoadGate;
  loadAverageAfter: number;
  record: WorkerRecord;
  decode?: DecodeNumbers;
}

async function speedPart(): Promise<string> {
  const kind = findCgroup();
  if (typeof kind === "string") throw new Error(kind);
  const model = args.model ?? defaultModel();
  const flash = await openFlashModel(model);
  const weightBytes = weightBytesOf(flash);
  const cfg = readModelConfig(await readGguf(model));
  const budgets = args.budgets.split(",").map((b) => b.trim());
  const runs = Number(args.runs), decodeTokens = Number(args.tokens), sparsity = Number(args.sparsity);
  const allowance = Number(args["allowance-mb"]) * MiB, nice = Number(args.nice);
  const threshold = Number(args["max-load"]);
  const waitAllowance = { seconds: Number(args["max-wait-min"]) * 60 };
  const promptIds = [1, ...fixedIds(Number(args["prompt-tokens"]) - 1, 4242, 20, 1000)];
  const contextLength = 64;
  const addon = loadAddon();
  const out = args.out ?? join(repoRoot(), "bench", "results", `pipeline-${stamp}.json`);
  log(`model ${model}: ${f1(weightBytes / MiB)} MiB of weights, group size ${flash.groupSize}; budgets ${budgets.join(", ")}, ${runs} runs each, ${decodeTokens} decode tokens, sparsity ${sparsity}`);

  // Memory bandwidth now and again at the end; the roofline uses the better (less disturbed).
  const memory: MemoryBandwidth[] = [measureMemoryBandwidth()];
  log(`memory bandwidth (1 thread): read ${f2(memory[0]!.readBytesPerSecond / 1e9)} GB/s, copy ${f2(memory[0]!.copyBytesPerSecond / 1e9)} GB/s`);

  const all: SpeedRun[] = [];
  let cgIndex = 0;
  const result: Record<string, unknown> = {
    bench: "pipeline", part: "speed", date: new Date().toISOString(), machine: machineInfo(), source: sourceState(), model, weightBytes, groupSize: flash.groupSize,
    budgets, sparsity, decodeTokens, promptIds, contextLength, allowanceBytes: allowance, nice, loadThreshold: threshold,
    cgroup: { version: kind.version }, memoryBandwidth: memory, runs: all,
  };
  const one = async (budget: string, config: Config, threads: number, round: number, pilot: boolean): Promise<SpeedRun> => {
    const gate = await waitForQuiet(threshold, waitAllowance, log);
    const limit = resolveBudget(parseBudget(budget), weightBytes) + allowance;
    const req: PipelineRequest = { modelPath: model, dram: budget, sparsity, threads, preload: config === "preload", promptIds, decodeTokens, contextLength };
    const record = await runWorkerInCgroup(req, { kind, parent: PARENT, name: `run-${cgIndex++}` }, limit, nice, Number(args.cap));
    const run: SpeedRun = { budget, config, threads, round, pilot, gate, loadAverageAfter: loadavg()[0]!, record };
    if (record.done) run.decode = decodeNumbers(record.done);
    const d = run.decode;
    log(
      `${pilot ? "pilot" : `round ${round}`} ${budget} ${config.padEnd(9)} t${threads}: ${record.status}` +
        (d ? `, ${f3(d.tokensPerSecond)} tok/s, ${f1(d.flashBytesPerToken / 1e6)} MB/token, mean read ${f1(d.meanReadBytes / 1024)} KiB, io wait ${f2(d.ioWaitSecondsPerToken)} s/token` : ` ${record.detail ?? ""}`) +
        `, cgroup peak ${f1((record.cgroup.peakBytes ?? 0) / MiB)} / ${f1(limit / MiB)} MiB, load ${f2(gate.loadAverage1)}${gate.waitedSeconds ? ` (waited ${gate.waitedSeconds} s)` : ""}${gate.startedAboveThreshold ? " ABOVE THRESHOLD" : ""}`,
    );
    all.push(run);
    save(out, result);
    return run;
  };

  try {
    // Threads: 1 unless 2 measures better (one preloading run each at the largest budget).
    let threads = Number(args.threads);
    if (args.threads === "auto") {
      const b = budgets[budgets.length - 1]!;
      const r1 = await one(b, "preload", 1, -1, true);
      const r2 = await one(b, "preload", 2, -1, true);
      const s1 = r1.decode?.tokensPerSecond ?? 0, s2 = r2.decode?.tokensPerSecond ?? 0;
      threads = s2 > s1 ? 2 : 1;
      log(`threads: 1 -> ${f3(s1)} tok/s, 2 -> ${f3(s2)} tok/s; using ${threads}`);
    }
    result.threads = threads;
    // Alternate configurations within each round and flip the order every round, so drift in
    // the machine's load hits both alike.
    for (let round = 0; round < runs; round++) {
      const bs = round % 2 === 0 ? budgets : [...budgets].reverse();
      for (const b of bs) {
        const order: Config[] = round % 2 === 0 ? ["preload", "on-demand"] : ["on-demand", "preload"];
        for (const c of order) await one(b, c, threads, round, false);
      }
    }
  } finally {
    removeParent(kind, PARENT);
  }

  // Flash bandwidth of our reader at each configuration's achieved mean read size, queue depth
  // 8, on the model file itself (O_DIRECT), two passes; then memory bandwidth again.
  const measured = all.filter((r) => !r.pilot && r.decode && r.threads === result.threads);
  const blocks = [...new Set(budgets.flatMap((b) => (["preload", "on-demand"] as Config[]).map((c) => {
    const rs = measured.filter((r) => r.budget === b && r.config === c);
    return rs.length ? readerBlockFor(median(rs.map((r) => r.decode!.meanReadBytes))) : 0;
  }).filter((x) => x > 0)))].sort((x, y) => x - y);
  const reader: (ReaderPoint & { pass: number; loadAverage1: number })[] = [];
  const engine = addon.ioDefaultBackend() as "io_uring" | "pread";
  for (let pass = 0; pass < 2; pass++) {
    for (const bs of pass === 0 ? blocks : [...blocks].reverse()) {
      const gate = await waitForQuiet(threshold, waitAllowance, log);
      const p = await measureReader(addon, model, engine, bs, 8, Number(args["io-seconds"]));
      reader.push({ ...p, pass, loadAverage1: gate.loadAverage1 });
      log(`reader ${engine} ${bs / 1024} KiB qd 8: ${f1(p.mbPerSecond)} MB/s (pass ${pass})`);
    }
  }
  memory.push(measureMemoryBandwidth());
  result.reader = reader;
  save(out, result);
  await reportSpeed(result as unknown as SpeedResult, out);
  return out;
}

interface SpeedResult {
  model: string;
  budgets: string[];
  threads: number;
  sparsity: number;
  decodeTokens: number;
  promptIds: number[];
  allowanceBytes: number;
  loadThreshold: number;
  memoryBandwidth: MemoryBandwidth[];
  reader: (ReaderPoint & { pass: number; loadAverage1: number })[];
  runs: SpeedRun[];
  summary?: Record<string, unknown>[];
}

// Summary and tables from a speed result (fresh or saved: --report recomputes them from the
// runs' raw counters, so a fix here applies to old results too).
async function reportSpeed(result: SpeedResult, out: string): Promise<void> {
  const { model, budgets, sparsity, decodeTokens, promptIds } = result;
  const flash = await openFlashModel(model);
  const weightBytes = weightBytesOf(flash);
  const cfg = readModelConfig(await readGguf(model));
  const all = result.runs;
  for (const r of all) if (r.record.done) r.decode = decodeNumbers(r.record.done);
  const measured = all.filter((r) => !r.pilot && r.decode && r.threads === result.threads);
  const memBw = Math.max(...result.memoryBandwidth.map((m) => m.readBytesPerSecond));
  const readerBw = (bs: number) => median(result.reader.filter((p) => p.blockBytes === bs).map((p) => p.mbPerSecond * 1e6));
  const allowance = result.allowanceBytes, threshold = result.loadThreshold;

  // DRAM bytes per token beyond the active columns: the resident head (every row, every
  // token), norms, and the KV cache read at the mean decode position.
  const headBytes = flash.resident.filter((t) => t.name === "output.weight").reduce((s, t) => s + t.bytes, 0)
    || (flash.resident.find((t) => t.name === "token_embd.weight")?.bytes ?? 0);
  const smallBytes = flash.resident.filter((t) => t.name !== "output.weight" && t.name !== "token_embd.weight").reduce((s, t) => s + t.bytes, 0);
  const meanPos = promptIds.length + (decodeTokens - 1) / 2;
  const kvReadPerToken = 2 * cfg.nLayer * meanPos * cfg.nHeadKv * cfg.headDim * 2;

  const rows: string[][] = [];
  const summary: Record<string, unknown>[] = [];
  for (const b of budgets) {
    const per = (c: Config) => measured.filter((r) => r.budget === b && r.config === c).map((r) => r.decode!);
    const tps: Record<Config, number> = { preload: median(per("preload").map((d) => d.tokensPerSecond)), "on-demand": median(per("on-demand").map((d) => d.tokensPerSecond)) };
    for (const c of ["preload", "on-demand"] as Config[]) {
      const ds = per(c);
      if (ds.length === 0) continue;
      const m = (f: (d: DecodeNumbers) => number) => median(ds.map(f));
      const flashPerToken = m((d) => d.flashBytesPerToken);
      const meanRead = m((d) => d.meanReadBytes);
      const bs = readerBlockFor(meanRead);
      // A record holds a channel's columns for every layer of its group, and activeBytes counts
      // whole records per layer visit: one layer's compute touches 1 / groupSize of it.
      const activeDram = m((d) => d.activeBytesPerToken) / flash.groupSize;
      const dramPerToken = activeDram + headBytes + smallBytes + kvReadPerToken;
      const roof = roofline(flashPerToken, readerBw(bs), dramPerToken, memBw);
      const peaks = measured.filter((r) => r.budget === b && r.config === c).map((r) => r.record.cgroup.peakBytes ?? 0);
      const s = {
        budget: b, config: c, runs: ds.length, tokensPerSecond: tps[c], tokensPerSecondAll: ds.map((d) => d.tokensPerSecond),
        ratioPreloadOverOnDemand: c === "preload" ? tps.preload / tps["on-demand"] : undefined,
        flashBytesPerToken: flashPerToken, meanReadBytes: meanRead, readerBlockBytes: bs,
        activeRecordBytesPerToken: m((d) => d.activeBytesPerToken), activeDramBytesPerToken: activeDram, preloadBytesPerToken: m((d) => d.preloadBytesPerToken), demandBytesPerToken: m((d) => d.demandBytesPerToken),
        activeFromCache: m((d) => d.activeFromCache), activeFromPreload: m((d) => d.activeFromPreload), activeOnDemand: m((d) => d.activeOnDemand),
        cacheHitRate: m((d) => d.cacheHitRate),
        ioWaitSecondsPerToken: m((d) => d.ioWaitSecondsPerToken), computeSecondsPerToken: m((d) => d.computeSecondsPerToken),
        preloadIoSecondsPerToken: m((d) => d.preloadIoSecondsPerToken), preloadWaitSecondsPerToken: m((d) => d.preloadWaitSecondsPerToken),
        demandWaitSecondsPerToken: m((d) => d.demandWaitSecondsPerToken), overlap: m((d) => d.overlap),
        cgroupPeakBytesMax: Math.max(...peaks), limitBytes: resolveBudget(parseBudget(b), weightBytes) + allowance,
        dramBytesPerTokenParts: { active: activeDram, head: headBytes, small: smallBytes, kv: kvReadPerToken },
        roofline: roof, achievedOverBound: tps[c] / roof.boundTokensPerSecond,
        prediction: c === "preload" ? pooledPrediction(ds) : undefined,
        ...(c === "preload" && ds.every((d) => d.predictionFromLayer3) ? {
          predictionLayers0to2: pooledPrediction(ds, (d) => d.predictionLayers0to2), predictionFromLayer3: pooledPrediction(ds, (d) => d.predictionFromLayer3),
        } : {}),
      };
      summary.push(s);
      rows.push([
        `${b} ${c}`, String(ds.length), f3(s.tokensPerSecond), c === "preload" ? f2(s.ratioPreloadOverOnDemand!) : "", f2(1 / s.tokensPerSecond), f1(flashPerToken / 1e6), f1(meanRead / 1024),
        f1(activeDram / 1e6), f1(s.preloadBytesPerToken / 1e6), f1(s.demandBytesPerToken / 1e6),
        `${pct(s.activeFromCache)}/${pct(s.activeFromPreload)}/${pct(s.activeOnDemand)}`,
        f2(s.ioWaitSecondsPerToken), f2(s.preloadWaitSecondsPerToken), f2(s.demandWaitSecondsPerToken), f2(s.computeSecondsPerToken), pct(s.overlap),
        `${f1(s.cgroupPeakBytesMax / MiB)}/${f1(s.limitBytes / MiB)}`,
        f1(roof.flashBytesPerSecond / 1e6), f2(memBw / 1e9), f3(roof.boundTokensPerSecond), roof.limitedBy, f2(s.achievedOverBound),
      ]);
    }
  }
  result.summary = summary;
  save(out, result);
  console.log(`7B random-weight model ${model}, group size ${flash.groupSize}, sparsity ${sparsity}, ${result.threads} thread(s), ${decodeTokens} decode tokens after a ${promptIds.length}-token prompt; medians; targets: preload/on-demand >= 1.5, achieved/bound >= 0.8`);
  console.log(table(
    ["budget config", "runs", "tok/s", "ratio", "s/tok", "flash MB/tok", "read KiB", "active DRAM MB/tok", "preload MB/tok", "demand MB/tok", "cache/pre/dem %", "io wait s/tok", "pre wait", "dem wait", "compute s/tok", "overlap %", "cgroup peak/limit MiB", "flash MB/s", "mem GB/s", "bound tok/s", "by", "ach/bound"],
    rows,
  ));
  const predictionTables = summary.flatMap((s) => [
    ["", s.prediction], [", predicted layers 0-2", s.predictionLayers0to2], [", predicted layers 3+", s.predictionFromLayer3],
  ].filter(([, p]) => p).map(([label, p]) => ({ budget: s.budget, label, prediction: p })));
  for (const s of predictionTables) {
    const pred = s.prediction as ReturnType<typeof pooledPrediction>;
    console.log(`\n7B prediction (${s.budget}${s.label}, pooled over runs; precision / recall %):`);
    console.log(table(["site", "d=0.5", "d=1", "d=2", "d=3", "d=4"], Object.entries(pred).map(([site, cs]) => [site, ...[0.5, 1, 2, 3, 4].map((d) => {
      const c = cs.find((x) => x.distance === d);
      return c ? `${pct(c.precision)} / ${pct(c.recall)}` : "-";
    })])));
  }
  const above = all.filter((r) => r.gate.startedAboveThreshold).length;
  console.log(`\nload: ${above} of ${all.length} runs started with the 1-min load above ${threshold} (wait allowance used up); 1-min load at run starts ${f2(Math.min(...all.map((r) => r.gate.loadAverage1)))}..${f2(Math.max(...all.map((r) => r.gate.loadAverage1)))}`);
  console.log(`wrote ${out}`);
}


async function recallPart(): Promise<string> {
  const margins = args.margins.split(",").map(Number);
  const tokens = Number(args["recall-tokens"]), sparsity = Number(args.sparsity);
  const runs: RecallRun[] = [];
  const prompts = RECALL_PROMPTS.slice(0, Number(args["recall-prompts"]));
  const out = args.out && args.part === "recall" ? args.out : join(repoRoot(), "bench", "results", `pipeline-recall-${stamp}.json`);
  const result: Record<string, unknown> = {
    bench: "pipeline", part: "recall", date: new Date().toISOString(), machine: machineInfo(), source: sourceState(), model: args["recall-model"], dram: args["recall-dram"],
    sparsity, tokens, prompts, margins, runs,
  };
  for (const m of margins) {
    for (const p of prompts) {
      const r = await recallRun(recallArgv(args["recall-model"], p, tokens, args["recall-dram"], sparsity, m), m, p, 10);
      runs.push(r);
      log(`margin ${m}: ${JSON.stringify(p.slice(0, 30))}: recall@1 attn_in ${pct(r.prediction.attn_in?.find((c) => c.distance === 1)?.recall ?? null)} ffn_in ${pct(r.prediction.ffn_in?.find((c) => c.distance === 1)?.recall ?? null)}, ${f1(r.flashBytesRead / 1e6)} MB read`);
      save(out, result);
    }
  }
  reportRecall(result as unknown as RecallResult, out);
  return out;
}

interface RecallResult { dram: string; sparsity: number; tokens: number; prompts: string[]; margins: number[]; runs: RecallRun[]; byMargin?: unknown }

function reportRecall(result: RecallResult, out: string): void {
  const { margins, runs, sparsity, tokens } = result;
  const byMargin = margins.map((m) => {
    const rs = runs.filter((r) => r.margin === m);
    return {
      margin: m, prediction: meanPrediction(rs),
      ...(rs.every((r) => r.predictionFromLayer3) ? { predictionFromLayer3: meanPrediction(rs, (r) => r.predictionFromLayer3) } : {}),
      flashBytesPerToken: median(rs.map((r) => r.flashBytesRead / r.generatedTokens)),
      preloadShareOfBytesRead: median(rs.map((r) => r.preloadBytesRead / Math.max(1, r.preloadBytesRead + r.demandBytesRead))),
      activeOnDemand: median(rs.map((r) => r.activeOnDemand)),
      decodeTokensPerSecond: median(rs.map((r) => r.decodeTokensPerSecond)),
    };
  });
  result.byMargin = byMargin;
  save(out, result);
  console.log(`SmolLM2 prediction, --dram ${result.dram} --sparsity ${sparsity}, ${tokens} greedy tokens, mean over ${result.prompts.length} prompts; precision / recall % by distance (d=0.5: from the previous sub-block; attn_out/ffn_out d=1: from the previous token)`);
  const rows: string[][] = [];
  for (const b of byMargin) {
    for (const [site, cs] of Object.entries(b.prediction)) {
      rows.push([`${b.margin}`, site, ...[0.5, 1, 2, 3, 4].map((d) => {
        const c = cs.find((x) => x.distance === d);
        return c ? `${pct(c.precision)} / ${pct(c.recall)}` : "-";
      }), f2(b.flashBytesPerToken / 1e6), pct(b.activeOnDemand)]);
    }
  }
  console.log(table(["margin", "site", "d=0.5", "d=1", "d=2", "d=3", "d=4", "flash MB/tok", "active on demand %"], rows));
  if (byMargin.every((b) => b.predictionFromLayer3)) {
    console.log(`\nThe same, predicted layers 3 and up only:`);
    console.log(table(["margin", "site", "d=0.5", "d=1", "d=2", "d=3", "d=4"], byMargin.flatMap((b) => Object.entries(b.predictionFromLayer3!).map(([site, cs]) => [
      `${b.margin}`, site, ...[0.5, 1, 2, 3, 4].map((d) => {
        const c = cs.find((x) => x.distance === d);
        return c ? `${pct(c.precision)} / ${pct(c.recall)}` : "-";
      }),
    ]))));
  }
  console.log(`wrote ${out}`);
}

async function main(): Promise<void> {
  if (args.report) {
    const { readFileSync } = await import("node:fs");
    const r = JSON.parse(readFileSync(args.report, "utf8")) as (SpeedResult | RecallResult) & { part: string };
    if (r.part === "recall") reportRecall(r as RecallResult, args.report);
    else await reportSpeed(r as SpeedResult, args.report);
    save(args.report, r);
    return;
  }
  if (!["speed", "recall", "all"].includes(args.part)) throw new Error(`--part ${args.part}: expected speed, recall or all`);
  if (args.part !== "recall") await speedPart();
  if (args.part !== "speed") await recallPart();
}

main().catch((e: unknown) => {
  console.error(`error: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
