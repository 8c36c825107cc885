// Issue 9's acceptance benchmark: decode speed of the swapping engine under real memory limits
// on one device (this VM's disk, or flash-emu's phone profiles when the whole benchmark runs
// under `flash-emu run --profile ufs40 --`), against
//   - the same engine with the whole model in DRAM at the same sparsity (no limit),
//   - llama.cpp (node-llama-cpp) with mmap on the Q4_1 file of the same shape under the same
//     cgroup limit (llama.cpp repacks Q4_0 into anonymous memory, so Q4_1 is its fair mmap case),
//   - the bound: the least flash time per token over the read strategies on the device's own
//     measured curve (a bench/roofline result of the same device) against the in-DRAM time.
// Every run is a child process in a fresh memory cgroup (limit = budget + allowance, page cache
// charged, caches dropped first). Configurations alternate within a round, the order flips every
// round; medians over rounds; each engine at its best thread count. Decode-only counters.
// Usage (root): node dist/bench/swap.js --model <7b .af.gguf> --llama <7b q4_1 .gguf> --label ufs40
//   [--roofline bench/results/roofline-ufs40-*.json] [--budgets 50%,25%] [--configs prefix,lfu]
//   (a config is a cache policy with options: prefix+preload, lfu+ahead for read-ahead, lfu+gap65536 for a fixed read gap)
//   [--threads 1,2] [--swap-threads 1] [--runs 3] [--tokens 16] [--sparsity 0.5] [--no-llama] [--report file.json]
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadavg, totalmem } from "node:os";
import { parseArgs } from "node:util";
import { openFlashModel } from "../src/flash/open.js";
import { parseBudget, resolveBudget, weightBytesOf } from "../src/memory/budget.js";
import { findCgroup, removeParent, type CgroupKind } from "./lib/budgetCgroup.js";
import { runInCgroup, type RunRecord } from "./lib/budgetRun.js";
import { machineInfo } from "./lib/machine.js";
import { repoRoot } from "./lib/paths.js";
import { decodeNumbers, type DecodeNumbers } from "./lib/pipelineDecode.js";
import { runWorkerInCgroup, type WorkerRecord } from "./lib/pipelineRun.js";
import type { PipelineRequest } from "./lib/pipelineTypes.js";
import { median, table, fixedIds } from "./lib/stats.js";
import { plotWith } from "./plot.js";

const MiB = 1 << 20;
const PARENT = `activeflow-swap-${process.pid}`;

const { values: args } = parseArgs({
  options: {
    model: { type: "string" },
    llama: { type: "string" },
    label: { type: "string", default: "device" },
    roofline: { type: "string" },
    budgets: { type: "string", default: "50%,25%" },
    configs: { type: "string", default: "prefix,lfu" },
    threads: { type: "string", default: "1,2" },
    // Our budgeted runs' thread counts (default --threads); the in-DRAM and llama.cpp runs use --threads.
    "swap-threads": { type: "string" },
    runs: { type: "string", default: "3" },
    tokens: { type: "string", default: "16" },
    sparsity: { type: "string", default: "0.5" },
    "allowance-mb": { type: "string", default: "256" },
    "no-llama": { type: "boolean", default: false },
    "no-dram": { type: "boolean", default: false },
    cap: { type: "string", default: "600" },
    out: { type: "string" },
    report: { type: "string" },
  },
});

const log = (s: string) => process.stderr.write(s + "\n");
const f2 = (x: number) => x.toFixed(2), f3 = (x: number) => x.toFixed(3);

type Engine = "ours" | "llamacpp";
interface Run {
  engine: Engine;
  config: string; // cache policy, "dram" (whole model in DRAM) or "mmap"
  budget: string; // "dram" for the in-DRAM reference
  threads: number;
  round: number;
  limitBytes: number | null;
  loadAverage1: number;
  status: string;
  detail?: string;
  tokensPerSecond: number;
  cgroupPeakBytes: number | null;
  tokens?: number[];
  decode?: DecodeNumbers & { demandIoSecondsPerToken: number; deviceBytesPerSecond: number; busyBytesPerSecond: number };
}

interface Result {
  bench: "swap";
  label: string;
  date: string;
  machine: unknown;
  model: string;
  llama: string | null;
  weightBytes: number;
  sparsity: number;
  decodeTokens: number;
  allowanceBytes: number;
  budgets: string[];
  configs: string[];
  threads: number[];
  swapThreads: number[];
  roofline: string | null;
  runs: Run[];
  summary?: unknown;
}

function save(out: string, result: unknown): void {
  mkdirSync(join(out, ".."), { recursive: true });
  writeFileSync(`${out}.tmp`, JSON.stringify(result, null, 1) + "\n");
  renameSync(`${out}.tmp`, out);
}

// The decode part of a worker record, plus the device throughput while decoding: bytes read per
// decode second, and per second of on-demand batches in flight (the device's busy time).
function decodeOf(rec: WorkerRecord): Run["decode"] | undefined {
  if (!rec.done) return undefined;
  const d = decodeNumbers(rec.done);
  const io = ((rec.done.atLast.demandIoSeconds ?? 0) - (rec.done.atFirst.demandIoSeconds ?? 0)) / d.tokens;
  return {
    ...d,
    demandIoSecondsPerToken: io,
    deviceBytesPerSecond: d.flashBytesPerToken * d.tokensPerSecond,
    busyBytesPerSecond: io > 0 ? d.demandBytesPerToken / io : 0,
  };
}

async function measure(): Promise<[Result, string]> {
  const kind = findCgroup();
  if (typeof kind === "string") throw new Error(kind);
  if (!args.model) throw new Error("--model <flash-layout .af.gguf> is required");
  const model = args.model;
  const flash = await openFlashModel(model);
  const weightBytes = weightBytesOf(flash);
  const budgets = args.budgets.split(",").map((b) => b.trim());
  const configs = args.configs.split(",").map((c) => c.trim());
  const threads = args.threads.split(",").map(Number);
  const swapThreads = (args["swap-threads"] ?? args.threads).split(",").map(Number);
  const sparsity = Number(args.sparsity), decodeTokens = Number(args.tokens), allowance = Number(args["allowance-mb"]) * MiB;
  const promptIds = [1, ...fixedIds(3, 4242, 20, 1000)];
  const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19) + "Z";
  const out = args.out ?? join(repoRoot(), "bench", "results", `swap-${args.label}-${stamp}.json`);
  const llama = args["no-llama"] ? null : (args.llama ?? null);
  const result: Result = {
    bench: "swap", label: args.label, date: new Date().toISOString(), machine: machineInfo(), model, llama, weightBytes, sparsity,
    decodeTokens, allowanceBytes: allowance, budgets, configs, threads, swapThreads, roofline: args.roofline ?? null, runs: [],
  };
  let n = 0;
  const ours = async (budget: string, config: string, t: number, round: number): Promise<Run> => {
    const inDram = budget === "dram";
    const limit = inDram ? Math.floor(totalmem() * 0.9) : resolveBudget(parseBudget(budget), weightBytes) + allowance;
    const [policy, ...opts] = config.split("+");
    const gap = opts.find((o) => o.startsWith("gap"));
    const req: PipelineRequest = {
      modelPath: model, dram: inDram ? "130%" : budget, sparsity, threads: t, preload: opts.includes("preload"), readAhead: opts.includes("ahead"), promptIds, decodeTokens, contextLength: 64,
      ...(inDram ? {} : { cachePolicy: policy as "lfu" | "prefix" }),
      ...(gap ? { readGap: Number(gap.slice(3)) } : {}),
    };
    const rec = await runWorkerInCgroup(req, { kind, parent: PARENT, name: `run-${n++}` }, limit, -5, Number(args.cap));
    const decode = decodeOf(rec);
    return {
      engine: "ours", config: inDram ? "dram" : config, budget, threads: t, round, limitBytes: inDram ? null : limit, loadAverage1: loadavg()[0]!,
      status: rec.status, ...(rec.detail ? { detail: rec.detail } : {}), tokensPerSecond: decode?.tokensPerSecond ?? 0,
      cgroupPeakBytes: rec.cgroup.peakBytes ?? null, ...(rec.done ? { tokens: rec.done.tokens } : {}), ...(decode ? { decode } : {}),
    };
  };
  const theirs = async (budget: string, t: number, round: number): Promise<Run> => {
    const limit = resolveBudget(parseBudget(budget), weightBytes) + allowance;
    const rec: RunRecord = await runInCgroup(
      { op: "run", engine: "llamacpp", modelPath: llama!, threads: t, warmupIds: fixedIds(4, 99, 20, 1000), warmupTokens: 2, promptIds, decodeTokens: decodeTokens + 1, contextLength: 64 },
      { cgroup: { kind, parent: PARENT, name: `run-${n++}` }, limitBytes: limit, capSeconds: Number(args.cap), totalCapSeconds: Number(args.cap) * 2 },
    );
    return {
      engine: "llamacpp", config: "mmap", budget, threads: t, round, limitBytes: limit, loadAverage1: loadavg()[0]!, status: rec.status,
      ...(rec.detail ? { detail: rec.detail } : {}), tokensPerSecond: rec.status === "ok" || rec.status === "timed out" ? rec.decodeTokensPerSecond : 0,
      cgroupPeakBytes: rec.cgroup?.peakBytes ?? null,
    };
  };
  const note = (r: Run) => {
    result.runs.push(r);
    save(out, result);
    const d = r.decode;
    log(`round ${r.round} ${r.budget.padEnd(4)} ${r.engine} ${r.config.padEnd(6)} t${r.threads}: ${r.status} ${f3(r.tokensPerSecond)} tok/s` +
      (d ? `, ${(d.flashBytesPerToken / 1e6).toFixed(0)} MB/token in ${d.readsPerToken.toFixed(0)} reads (mean ${(d.meanReadBytes / 1024).toFixed(0)} KiB), hit ${f3(d.cacheHitRate)}, wait ${f3(d.demandWaitSecondsPerToken)} s, compute ${f3(d.computeSecondsPerToken)} s, device ${f2(d.deviceBytesPerSecond / 1e9)} GB/s (busy ${f2(d.busyBytesPerSecond / 1e9)})` : ` ${r.detail ?? ""}`) +
      `, peak ${((r.cgroupPeakBytes ?? 0) / MiB).toFixed(0)} MiB, load ${f2(r.loadAverage1)}`);
  };
  try {
    for (let round = 0; round < Number(args.runs); round++) {
      const flip = round % 2 === 1;
      const ts = flip ? [...threads].reverse() : threads;
      if (!args["no-dram"]) for (const t of ts) note(await ours("dram", "dram", t, round));
      for (const b of flip ? [...budgets].reverse() : budgets) {
        const jobs: (() => Promise<Run>)[] = [];
        for (const t of flip ? [...swapThreads].reverse() : swapThreads) for (const c of configs) jobs.push(() => ours(b, c, t, round));
        if (llama) for (const t of ts) jobs.push(() => theirs(b, t, round));
        for (const j of flip ? jobs.reverse() : jobs) note(await j());
      }
    }
  } finally {
    removeParent(kind, PARENT);
  }
  return [result, out];
}

interface Cell { engine: Engine; config: string; budget: string; threads: number; tokensPerSecond: number; runs: number; failed: number; decode?: Run["decode"] }

// Medians per (engine, config, budget, threads), each engine and config at its best thread count.
async function report(result: Result, out: string): Promise<void> {
  const cells: Cell[] = [];
  const keys = new Set(result.runs.map((r) => `${r.engine}|${r.config}|${r.budget}|${r.threads}`));
  for (const k of keys) {
    const [engine, config, budget, th] = k.split("|") as [Engine, string, string, string];
    const rs = result.runs.filter((r) => r.engine === engine && r.config === config && r.budget === budget && r.threads === Number(th));
    const mid = median(rs.map((r) => r.tokensPerSecond));
    const closest = rs.filter((r) => r.decode).sort((a, b) => Math.abs(a.tokensPerSecond - mid) - Math.abs(b.tokensPerSecond - mid))[0];
    cells.push({ engine, config, budget, threads: Number(th), tokensPerSecond: mid, runs: rs.length, failed: rs.filter((r) => r.status !== "ok").length, ...(closest?.decode ? { decode: closest.decode } : {}) });
  }
  const best = (engine: Engine, config: string, budget: string) =>
    cells.filter((c) => c.engine === engine && c.config === config && c.budget === budget).sort((a, b) => b.tokensPerSecond - a.tokensPerSecond)[0];
  const dram = best("ours", "dram", "dram");
  type Bound = { budget: string; bestSeconds: number; layout: string; split?: string };
  const roof = result.roofline ? (JSON.parse(readFileSync(result.roofline, "utf8")) as { bounds: Bound[]; label: string }) : undefined;
  const rows: string[][] = [];
  const summary: Record<string, unknown>[] = [];
  for (const b of result.budgets) {
    const theirs = best("llamacpp", "mmap", b);
    const flashBest = roof ? Math.min(...roof.bounds.filter((x) => x.budget === b).map((x) => x.bestSeconds)) : undefined;
    const bound = flashBest !== undefined && dram ? 1 / Math.max(flashBest, 1 / dram.tokensPerSecond) : undefined;
    for (const c of result.configs) {
      const o = best("ours", c, b);
      if (!o) continue;
      const s = {
        budget: b, config: c, threads: o.threads, tokensPerSecond: o.tokensPerSecond, failed: o.failed,
        inDramTokensPerSecond: dram?.tokensPerSecond ?? null, ratioToDram: dram ? o.tokensPerSecond / dram.tokensPerSecond : null,
        llamaTokensPerSecond: theirs?.tokensPerSecond ?? null, llamaThreads: theirs?.threads ?? null, llamaFailed: theirs?.failed ?? null,
        ratioToLlama: theirs && theirs.tokensPerSecond > 0 ? o.tokensPerSecond / theirs.tokensPerSecond : null,
        boundTokensPerSecond: bound ?? null, ratioToBound: bound ? o.tokensPerSecond / bound : null,
        flashBytesPerToken: o.decode?.flashBytesPerToken ?? null, meanReadBytes: o.decode?.meanReadBytes ?? null, cacheHitRate: o.decode?.cacheHitRate ?? null,
        deviceBytesPerSecond: o.decode?.deviceBytesPerSecond ?? null, busyBytesPerSecond: o.decode?.busyBytesPerSecond ?? null,
      };
      summary.push(s);
      rows.push([b, c, `t${o.threads}`, f3(o.tokensPerSecond), dram ? f3(dram.tokensPerSecond) : "-", s.ratioToDram === null ? "-" : f2(s.ratioToDram),
        theirs ? `${f3(theirs.tokensPerSecond)} t${theirs.threads}${theirs.failed ? ` (${theirs.failed} failed)` : ""}` : "-", s.ratioToLlama === null ? "-" : f2(s.ratioToLlama),
        bound ? f3(bound) : "-", s.ratioToBound === null ? "-" : f2(s.ratioToBound),
        o.decode ? (o.decode.flashBytesPerToken / 1e6).toFixed(0) : "-", o.decode ? (o.decode.meanReadBytes / 1024).toFixed(0) : "-",
        o.decode ? f2(o.decode.busyBytesPerSecond / 1e9) : "-"]);
    }
  }
  result.summary = summary;
  save(out, result);
  console.log(`swap benchmark on ${result.label}: ${result.model}, sparsity ${result.sparsity}, ${result.decodeTokens} decode tokens, medians of ${Math.max(...result.runs.map((r) => r.round)) + 1} rounds`);
  console.log(table(["budget", "cache", "thr", "tok/s", "in DRAM", "x DRAM", "llama.cpp mmap", "x llama", "bound", "x bound", "MB/tok", "read KiB", "busy GB/s"], rows));
  const png = await plotWith("plot_swap.py", out, out.replace(/\.json$/, ".png"), log);
  console.log(`\n${out}\n${png}`);
}

async function main(): Promise<void> {
  if (args.report) {
    const r = JSON.parse(readFileSync(args.report, "utf8")) as Result;
    await report(r, args.report);
    return;
  }
  const [r, out] = await measure();
  await report(r, out);
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
