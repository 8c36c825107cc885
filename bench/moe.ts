// Issue 10's MoE benchmark: decode speed of a mixture-of-experts model under a DRAM budget,
// experts on flash (whole experts read on demand, an LFU pool of expert slots, pre-gating on or
// off), against llama.cpp (node-llama-cpp) with mmap on the Q4_1 file of the same shape under
// the same cgroup limit (it too reads only the routed experts' pages), and against a bound: the
// experts a token must read that the pool cannot hold, at the device's best large-read rate
// (a bench/roofline result of the same device), overlapped with the in-DRAM decode time.
// Every run is a child process in a fresh memory cgroup (limit = budget + allowance, page cache
// charged, caches dropped first); configurations alternate within a round, the order flips each
// round; medians over rounds. Decode-only counters (the first token, prefill, is excluded).
// Usage (root): node dist/bench/moe.js --model <.af.gguf> --llama <q4_1 .gguf> --budget 11.15%
//   [--roofline bench/results/roofline-disk-*.json] [--label disk] [--runs 3] [--tokens 8]
//   [--threads 1] [--llama-threads 1,2] [--configs pregate,nopregate] [--temperature 0]
//   [--device-bps <bytes/s>] [--note "..."]
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import type { BackendExpertStats, BackendFlashStats } from "../src/backend/Backend.js";
import { openFlashModel } from "../src/flash/open.js";
import { getNumber } from "../src/gguf/reader.js";
import { parseBudget, resolveBudget, weightBytesOf } from "../src/memory/budget.js";
import { findCgroup, removeParent } from "./lib/budgetCgroup.js";
import { runInCgroup, type RunRecord } from "./lib/budgetRun.js";
import { machineInfo } from "./lib/machine.js";
import { repoRoot } from "./lib/paths.js";
import { runWorkerInCgroup, type WorkerRecord } from "./lib/pipelineRun.js";
import type { PipelineRequest } from "./lib/pipelineTypes.js";
import { fixedIds, median, table } from "./lib/stats.js";
import { plotWith } from "./plot.js";

const MiB = 1 << 20;
const PARENT = `activeflow-moe-${process.pid}`;

const { values: args } = parseArgs({
  options: {
    model: { type: "string" },
    llama: { type: "string" },
    label: { type: "string", default: "disk" },
    roofline: { type: "string" },
    budget: { type: "string", default: "11.15%" },
    configs: { type: "string", default: "pregate,nopregate" },
    threads: { type: "string", default: "1" },
    "llama-threads": { type: "string", default: "1,2" },
    runs: { type: "string", default: "3" },
    tokens: { type: "string", default: "8" },
    "allowance-mb": { type: "string", default: "256" },
    "no-llama": { type: "boolean", default: false },
    cap: { type: "string", default: "900" },
    note: { type: "string", default: "" },
    // Sample decode tokens at this temperature (fixed seed, the same for both engines) instead
    // of greedy: greedy decoding of random weights repeats a few tokens, and so the same experts,
    // which is locality a random router does not have. 0: greedy.
    temperature: { type: "string", default: "0" },
    // The device's large-read rate for the bound, measured apart (say how in --note), instead of
    // the roofline's best point: the disk probe of 12:39 read 1.2 GB/s, less than this engine
    // then reached (1.8 GB/s) on the same disk.
    "device-bps": { type: "string" },
    out: { type: "string" },
    report: { type: "string" },
  },
});

const log = (s: string) => process.stderr.write(s + "\n");
const f2 = (x: number) => x.toFixed(2), f3 = (x: number) => x.toFixed(3);

interface ExpertDecode {
  tokensPerSecond: number;
  flashBytesPerToken: number;
  expertBytesPerToken: number;
  expertsReadPerToken: number;
  expertsPrefetchedPerToken: number;
  expertHitRate: number;
  prefetchHitRate: number;
  pregateRecall: number | null;
  expertWaitSecondsPerToken: number;
  expertComputeSecondsPerToken: number;
  slots: number;
  slotBytes: number;
}

interface Run {
  engine: "ours" | "llamacpp";
  config: string;
  threads: number;
  round: number;
  limitBytes: number;
  loadAverage1: number;
  status: string;
  detail?: string;
  tokensPerSecond: number;
  cgroupPeakBytes: number | null;
  tokens?: number[];
  decode?: ExpertDecode;
}

type Stats = BackendFlashStats & { experts?: BackendExpertStats };

function decodeOf(rec: WorkerRecord): ExpertDecode | undefined {
  const d = rec.done;
  if (!d) return undefined;
  const a = d.atFirst as Stats, b = d.atLast as Stats;
  const t = d.decodeTokens;
  const x0 = a.experts!, x1 = b.experts!;
  const dx = (k: keyof BackendExpertStats) => (x1[k] as number) - (x0[k] as number);
  const num = (s: Stats, k: keyof BackendFlashStats) => (typeof s[k] === "number" ? (s[k] as number) : 0);
  const tp = dx("predTp"), fn = dx("predFn");
  return {
    tokensPerSecond: t / d.decodeSeconds,
    flashBytesPerToken: (num(b, "bytesRead") - num(a, "bytesRead") + num(b, "headBytesRead") - num(a, "headBytesRead") + dx("bytesRead")) / t,
    expertBytesPerToken: dx("bytesRead") / t,
    expertsReadPerToken: dx("reads") / t,
    expertsPrefetchedPerToken: dx("prefetches") / t,
    expertHitRate: dx("lookups") > 0 ? dx("hits") / dx("lookups") : 0,
    prefetchHitRate: dx("lookups") > 0 ? dx("prefetchHits") / dx("lookups") : 0,
    pregateRecall: tp + fn > 0 ? tp / (tp + fn) : null,
    expertWaitSecondsPerToken: dx("waitSeconds") / t,
    expertComputeSecondsPerToken: dx("computeSeconds") / t,
    slots: x1.slots,
    slotBytes: x1.slotBytes,
  };
}

function save(out: string, result: unknown): void {
  mkdirSync(join(out, ".."), { recursive: true });
  writeFileSync(`${out}.tmp`, JSON.stringify(result, null, 1) + "\n");
  renameSync(`${out}.tmp`, out);
}

async function measure(): Promise<[Record<string, unknown>, string]> {
  const kind = findCgroup();
  if (typeof kind === "string") throw new Error(kind);
  if (!args.model) throw new Error("--model <flash-layout .af.gguf of an MoE model> is required");
  const flash = await openFlashModel(args.model);
  if (!flash.expertShape) throw new Error(`${args.model} has no experts`);
  const weightBytes = weightBytesOf(flash);
  const budget = resolveBudget(parseBudget(args.budget), weightBytes);
  const allowance = Number(args["allowance-mb"]) * MiB;
  const limit = budget + allowance;
  const threads = args.threads.split(",").map(Number), llamaThreads = args["llama-threads"].split(",").map(Number);
  const configs = args.configs.split(",");
  const decodeTokens = Number(args.tokens);
  const temperature = Number(args.temperature);
  const sample = temperature > 0 ? { sample: { temperature, seed: 4242 } } : {};
  const promptIds = [1, ...fixedIds(3, 4242, 20, 1000)];
  const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19) + "Z";
  const out = args.out ?? join(repoRoot(), "bench", "results", `moe-${args.label}-${stamp}.json`);
  const llama = args["no-llama"] ? null : (args.llama ?? null);
  const result: Record<string, unknown> & { runs: Run[] } = {
    bench: "moe", label: args.label, date: new Date().toISOString(), machine: machineInfo(), note: args.note, model: args.model, llama,
    weightBytes, budget: args.budget, budgetBytes: budget, temperature, allowanceBytes: allowance, decodeTokens, configs, threads, llamaThreads,
    experts: { ...flash.expertShape, layers: flash.nLayer, spanBytes: flash.experts[0]!.spanBytes },
    expertsUsed: getNumber(flash.gguf, `${flash.arch}.expert_used_count`), roofline: args.roofline ?? null,
    deviceBytesPerSecond: args["device-bps"] !== undefined ? Number(args["device-bps"]) : null, runs: [],
  };
  let n = 0;
  const ours = async (config: string, t: number, round: number): Promise<Run> => {
    const req: PipelineRequest = {
      modelPath: args.model!, dram: String(budget), sparsity: 0, threads: t, preload: false, promptIds, decodeTokens, contextLength: 64,
      pregate: config !== "nopregate", ...sample,
    };
    const rec = await runWorkerInCgroup(req, { kind, parent: PARENT, name: `run-${n++}` }, limit, -5, Number(args.cap));
    const decode = decodeOf(rec);
    return {
      engine: "ours", config, threads: t, round, limitBytes: limit, loadAverage1: loadavg()[0]!, status: rec.status, ...(rec.detail ? { detail: rec.detail } : {}),
      tokensPerSecond: decode?.tokensPerSecond ?? 0, cgroupPeakBytes: rec.cgroup.peakBytes ?? null, ...(rec.done ? { tokens: rec.done.tokens } : {}), ...(decode ? { decode } : {}),
    };
  };
  const theirs = async (t: number, round: number): Promise<Run> => {
    const rec: RunRecord = await runInCgroup(
      { op: "run", engine: "llamacpp", modelPath: llama!, threads: t, warmupIds: fixedIds(4, 99, 20, 1000), warmupTokens: 2, promptIds, decodeTokens: decodeTokens + 1, contextLength: 64, ...sample },
      { cgroup: { kind, parent: PARENT, name: `run-${n++}` }, limitBytes: limit, capSeconds: Number(args.cap), totalCapSeconds: Number(args.cap) * 2 },
    );
    return {
      engine: "llamacpp", config: "mmap", threads: t, round, limitBytes: limit, loadAverage1: loadavg()[0]!, status: rec.status, ...(rec.detail ? { detail: rec.detail } : {}),
      tokensPerSecond: rec.status === "ok" || rec.status === "timed out" ? rec.decodeTokensPerSecond : 0, cgroupPeakBytes: rec.cgroup?.peakBytes ?? null,
    };
  };
  const note = (r: Run) => {
    result.runs.push(r);
    save(out, result);
    const d = r.decode;
    log(`round ${r.round} ${r.engine} ${r.config.padEnd(9)} t${r.threads}: ${r.status} ${f3(r.tokensPerSecond)} tok/s` +
      (d ? `, ${(d.flashBytesPerToken / 1e6).toFixed(0)} MB/token, experts read ${f2(d.expertsReadPerToken)} + pre-gated ${f2(d.expertsPrefetchedPerToken)} per token, hit ${f3(d.expertHitRate)} (pre-gating ${f3(d.prefetchHitRate)}), recall ${d.pregateRecall === null ? "-" : f3(d.pregateRecall)}, wait ${f3(d.expertWaitSecondsPerToken)} s, compute ${f3(d.expertComputeSecondsPerToken)} s, ${d.slots} slots` : ` ${r.detail ?? ""}`) +
      `, peak ${((r.cgroupPeakBytes ?? 0) / MiB).toFixed(0)} MiB, load ${f2(r.loadAverage1)}`);
  };
  try {
    for (let round = 0; round < Number(args.runs); round++) {
      const jobs: (() => Promise<Run>)[] = [];
      for (const t of threads) for (const c of configs) jobs.push(() => ours(c, t, round));
      if (llama) for (const t of llamaThreads) jobs.push(() => theirs(t, round));
      for (const j of round % 2 === 1 ? jobs.reverse() : jobs) note(await j());
    }
  } finally {
    removeParent(kind, PARENT);
  }
  return [result, out];
}

// The bound: decode time >= max(in-DRAM compute, flash time of the experts that must be read).
// With a router that picks K of N experts uniformly (a random model), a pool of S slots holding
// experts of all L layers hits (S - K) / (N L) at best, so a token reads at least
// L K (1 - hit) experts of spanBytes each, at the device's best large-read rate.
interface Bound { deviceBytesPerSecond: number; bestHitRate: number; boundBytesPerToken: number; boundTokensPerSecond: number }

function boundOf(result: Record<string, unknown>, slots: number, computeSeconds: number): Bound | null {
  let best = typeof result.deviceBytesPerSecond === "number" ? result.deviceBytesPerSecond : 0;
  if (best === 0) {
    if (!result.roofline) return null;
    const roof = JSON.parse(readFileSync(result.roofline as string, "utf8")) as { points: { bytes: number; bytesPerSecond: number }[] };
    best = Math.max(...roof.points.filter((p) => p.bytes >= 128 << 10).map((p) => p.bytesPerSecond));
  }
  const x = result.experts as { nExpert: number; layers: number; spanBytes: number };
  const k = result.expertsUsed as number;
  const hit = Math.max(0, (slots - k) / (x.nExpert * x.layers));
  const bytes = x.layers * k * (1 - hit) * x.spanBytes;
  const seconds = Math.max(bytes / best, computeSeconds);
  return { deviceBytesPerSecond: best, bestHitRate: hit, boundBytesPerToken: bytes, boundTokensPerSecond: 1 / seconds };
}

async function report(result: Record<string, unknown> & { runs: Run[] }, out: string): Promise<void> {
  const rows: string[][] = [];
  const summary: Record<string, unknown>[] = [];
  const keys = [...new Set(result.runs.map((r) => `${r.engine}|${r.config}|${r.threads}`))];
  const cells = keys.map((k) => {
    const [engine, config, th] = k.split("|") as [Run["engine"], string, string];
    const rs = result.runs.filter((r) => r.engine === engine && r.config === config && r.threads === Number(th));
    const mid = median(rs.map((r) => r.tokensPerSecond));
    const closest = rs.filter((r) => r.decode).sort((a, b) => Math.abs(a.tokensPerSecond - mid) - Math.abs(b.tokensPerSecond - mid))[0];
    return { engine, config, threads: Number(th), tokensPerSecond: mid, runs: rs.length, failed: rs.filter((r) => r.status !== "ok").length, decode: closest?.decode, peak: Math.max(...rs.map((r) => r.cgroupPeakBytes ?? 0)) };
  });
  const llama = cells.filter((c) => c.engine === "llamacpp").sort((a, b) => b.tokensPerSecond - a.tokensPerSecond)[0];
  for (const c of cells) {
    const d = c.decode;
    const bound = d ? boundOf(result, d.slots, d.expertComputeSecondsPerToken) : null;
    const s = {
      engine: c.engine, config: c.config, threads: c.threads, tokensPerSecond: c.tokensPerSecond, runs: c.runs, failed: c.failed, cgroupPeakBytes: c.peak,
      ratioToLlama: c.engine === "ours" && llama && llama.tokensPerSecond > 0 ? c.tokensPerSecond / llama.tokensPerSecond : null,
      ...(bound ? { bound, ratioToBound: c.tokensPerSecond / bound.boundTokensPerSecond } : {}),
      ...(d ? { decode: d } : {}),
    };
    summary.push(s);
    rows.push([c.engine, c.config, `t${c.threads}`, f3(c.tokensPerSecond), `${c.runs - c.failed}/${c.runs}`, s.ratioToLlama === null ? "-" : f2(s.ratioToLlama),
      bound ? f3(bound.boundTokensPerSecond) : "-", s.ratioToBound !== undefined ? f2(s.ratioToBound) : "-",
      d ? (d.flashBytesPerToken / 1e6).toFixed(0) : "-", d ? f3(d.expertHitRate) : "-", d?.pregateRecall != null ? f3(d.pregateRecall) : "-", (c.peak / MiB).toFixed(0)]);
  }
  result.summary = summary;
  save(out, result);
  console.log(`moe benchmark on ${result.label}: ${result.model}, budget ${result.budget} (${((result.budgetBytes as number) / MiB).toFixed(0)} MiB), ${result.decodeTokens} decode tokens, medians of ${Math.max(...result.runs.map((r) => r.round)) + 1} rounds`);
  console.log(table(["engine", "config", "thr", "tok/s", "ok", "x llama", "bound", "x bound", "MB/tok", "expert hit", "recall", "peak MiB"], rows));
  const png = await plotWith("plot_moe.py", out, out.replace(/\.json$/, ".png"), log);
  console.log(`\n${out}\n${png}`);
}

async function main(): Promise<void> {
  if (args.report) {
    const r = JSON.parse(readFileSync(args.report, "utf8")) as Record<string, unknown> & { runs: Run[] };
    await report(r, args.report);
    return;
  }
  const [r, out] = await measure();
  await report(r as Record<string, unknown> & { runs: Run[] }, out);
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
