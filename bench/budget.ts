// Budget benchmark: decode speed of ours (flash mode, `dram` = budget, sparsity 0.5) against
// llama.cpp (node-llama-cpp, mmap) when both run inside the same real cgroup memory limit of
// budget + a fixed runtime allowance, at 100/75/50/35/25 % of the model's weight bytes.
// See bench/README.md ("Budget") for what each number means.
// Usage: node dist/bench/budget.js [--quick] [--runs N] [--models smollm2,synth7b] ...
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, release } from "node:os";
import { join } from "node:path";
import { modelsDir } from "../src/fetch/cache.js";
import { GgmlType } from "../src/gguf/types.js";
import { findCgroup, removeParent, type CgroupKind } from "./lib/budgetCgroup.js";
import { prepareModel, runInCgroup, type RunRecord } from "./lib/budgetRun.js";
import type { BudgetEngine, PrepareResult, RunRequest } from "./lib/budgetTypes.js";
import { machineInfo } from "./lib/machine.js";
import { smollm2Model, SYNTH_SEED } from "./lib/models.js";
import { repoRoot } from "./lib/paths.js";
import { fixedIds, median, table } from "./lib/stats.js";
import { plotBudget } from "./plot.js";

const MiB = 1 << 20;
// What both engines get on top of the budget: Node, V8 heap, the addon / llama.cpp runtime.
const RUNTIME_ALLOWANCE = 256 * MiB;
const BUDGETS = [100, 75, 50, 35, 25];
const SPARSITY = 0.5;
const WARMUP_IDS = [11, 12, 13, 14];
const WARMUP_TOKENS = 2;

interface Args {
  quick: boolean;
  runs: number;
  runs7b: number;
  models: string[];
  threads: { ours: number; llamacpp: number } | undefined;
  cap: number;
  noCgroup: boolean;
  out: string | undefined;
  prompt: number;
  // Reprint the table and redraw the plots of a saved result file, measuring nothing.
  report: string | undefined;
  // Subsets for a short rerun: budget percentages and engines to measure.
  budgets: number[];
  engines: string[];
  refs: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { quick: false, runs: 3, runs7b: 3, models: ["smollm2", "synth7b"], threads: undefined, cap: 120, noCgroup: false, out: undefined, prompt: 16, report: undefined, budgets: BUDGETS, engines: ["ours", "llamacpp"], refs: true };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = () => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${k} needs a value`);
      return x;
    };
    if (k === "--quick") a.quick = true;
    else if (k === "--runs") a.runs = a.runs7b = Number(v());
    else if (k === "--runs-7b") a.runs7b = Number(v());
    else if (k === "--models") a.models = v().split(",");
    else if (k === "--threads") {
      const [o, l] = v().split(",").map(Number);
      a.threads = { ours: o!, llamacpp: l ?? o! };
    } else if (k === "--cap") a.cap = Number(v());
    else if (k === "--no-cgroup") a.noCgroup = true;
    else if (k === "--out") a.out = v();
    else if (k === "--prompt") a.prompt = Number(v());
    else if (k === "--report") a.report = v();
    else if (k === "--budgets") a.budgets = v().split(",").map(Number);
    else if (k === "--engines") a.engines = v().split(",");
    else if (k === "--no-refs") a.refs = false;
    else throw new Error(`unknown option ${k}; see bench/README.md ("Budget")`);
  }
  if (a.quick) {
    a.models = ["smollm2"];
    a.runs = 1;
  }
  return a;
}

// All run groups live under one parent group, removed at the end (and on failure).
const PARENT = `activeflow-bench-${process.pid}`;
let activeKind: CgroupKind | undefined;
const cleanup = () => activeKind && removeParent(activeKind, PARENT);

const log = (s: string) => process.stderr.write(s + "\n");
const gb = (b: number | undefined) => (b === undefined ? "-" : `${(b / 2 ** 30).toFixed(2)}G`);
const mb = (b: number | undefined) => (b === undefined ? "-" : `${(b / MiB).toFixed(0)}M`);

interface ModelSpec {
  key: string;
  name: string;
  path: string;
  // The file llama.cpp runs: the same shape in a type it maps as is (it repacks Q4_0 into
  // anonymous memory, so under a limit its fair mmap case is Q4_1).
  llamaPath: string;
  note: string;
  decodeTokens: number;
  runs: number;
  tokensPerPrompt: number;
}

async function synth7b(type: "q4_0" | "q4_1" = "q4_0"): Promise<string> {
  const path = join(modelsDir(), `synth-llama2-7b-${type}.gguf`);
  if (existsSync(path)) return path;
  const { synthesizeModel } = await import("../src/synth/synth.js");
  mkdirSync(modelsDir(), { recursive: true });
  log(`writing ${path} (random weights, seed ${SYNTH_SEED}, 3.8 GB) ...`);
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    await synthesizeModel("llama2-7b", type === "q4_0" ? GgmlType.Q4_0 : GgmlType.Q4_1, tmp, { seed: SYNTH_SEED });
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  renameSync(tmp, path);
  return path;
}

async function models(args: Args): Promise<ModelSpec[]> {
  const out: ModelSpec[] = [];
  for (const key of args.models) {
    if (key === "smollm2") {
      const m = await smollm2Model();
      if (m.path === undefined) {
        log(`skipping smollm2: ${m.reason}`);
        continue;
      }
      out.push({ key, name: m.name, path: m.path, llamaPath: m.path, note: m.note, decodeTokens: 64, runs: args.runs, tokensPerPrompt: 64 });
    } else if (key === "synth7b") {
      out.push({
        key,
        name: "synth-llama2-7b-q4_0",
        path: await synth7b(),
        llamaPath: await synth7b("q4_1"),
        note: "random weights (llama.cpp runs the Q4_1 file of the same shape, which it maps without repacking): speed and memory only; its activations are homogeneous, so the calibration (4 self-generated tokens per prompt) and the hot cache see no real skew",
        decodeTokens: 16,
        runs: args.runs7b,
        tokensPerPrompt: 4,
      });
    } else throw new Error(`unknown model ${key}; expected smollm2 or synth7b`);
  }
  return out;
}

// One measured configuration: an engine, its settings and the memory limit it runs in.
interface Point {
  label: string;
  engine: BudgetEngine;
  budgetPct: number | undefined;
  sparsity: number | undefined;
  dram: string | number | undefined;
  limitBytes: number | undefined;
}

function points(weightBytes: number, args: Args): Point[] {
  const limit = (pct: number) => Math.floor((weightBytes * pct) / 100) + RUNTIME_ALLOWANCE;
  // The two references first: on the slow 7B they are the points a run cut short must not lose.
  const ps: Point[] = [];
  // The whole model fits: every column ends up cached; no cgroup limit, the peak is still read.
  const inDram = Math.ceil(weightBytes * 1.25) + RUNTIME_ALLOWANCE;
  if (args.refs && args.engines.includes("ours")) {
    ps.push({ label: `ours in DRAM sp${SPARSITY}`, engine: "ours", budgetPct: undefined, sparsity: SPARSITY, dram: inDram, limitBytes: undefined });
    ps.push({ label: "ours 100% sp0 (dense in flash)", engine: "ours", budgetPct: 100, sparsity: 0, dram: "100%", limitBytes: limit(100) });
  }
  for (const pct of args.budgets) {
    if (args.engines.includes("ours")) {
      ps.push({ label: `ours ${pct}% sp${SPARSITY}`, engine: "ours", budgetPct: pct, sparsity: SPARSITY, dram: `${pct}%`, limitBytes: limit(pct) });
    }
    if (args.engines.includes("llamacpp")) {
      ps.push({ label: `llama.cpp ${pct}%`, engine: "llamacpp", budgetPct: pct, sparsity: undefined, dram: undefined, limitBytes: limit(pct) });
    }
  }
  return ps;
}

interface Measured {
  model: string;
  point: Point;
  threads: number;
  run: number;
  record: RunRecord;
}

function request(m: ModelSpec, p: Point, threads: number, promptIds: number[], decodeTokens = m.decodeTokens): RunRequest {
  const r: RunRequest = {
    op: "run",
    engine: p.engine,
    modelPath: p.engine === "llamacpp" ? m.llamaPath : m.path,
    threads,
    warmupIds: WARMUP_IDS,
    warmupTokens: WARMUP_TOKENS,
    promptIds,
    decodeTokens,
    contextLength: 128,
  };
  if (p.dram !== undefined) r.dram = p.dram;
  if (p.sparsity !== undefined) r.sparsity = p.sparsity;
  return r;
}

function describe(r: RunRecord): string {
  const split = r.cgroup?.sampledAnonBytesMax !== undefined ? ` (anon <= ${mb(r.cgroup.sampledAnonBytesMax)}, cache <= ${mb(r.cgroup.sampledFileBytesMax)})` : "";
  const base = `${r.status} decode ${r.decodeTokensPerSecond.toFixed(2)} tok/s (${r.tokens} tok), prefill ${r.prefillTokensPerSecond?.toFixed(1) ?? "-"} tok/s, peak ${mb(r.cgroup?.peakBytes)}${split} / limit ${mb(r.limitBytes)}`;
  const f = r.decodeFlashBytesPerToken !== undefined ? `, flash ${mb(r.decodeFlashBytesPerToken)}/tok, hit ${r.flash?.cacheHitRate.toFixed(2)}` : "";
  return base + f + (r.detail ? ` [${r.detail}]` : "");
}

async function report(file: string): Promise<void> {
  const saved = JSON.parse(readFileSync(file, "utf8")) as { runs: Measured[]; complete: boolean };
  if (!saved.complete) log(`note: ${file} is from a benchmark that did not finish (all its finished runs are used)`);
  const summaries = summarize(saved.runs);
  printReport(summaries, ratios(summaries));
  log(`plots: ${(await plotBudget(file, log)).join(", ")}`);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.report !== undefined) return report(args.report);
  let kind: CgroupKind | undefined;
  const found = findCgroup();
  if (typeof found === "string") {
    if (!args.noCgroup) {
      log(`budget benchmark: ${found}.\nIt measures speed under a real memory limit and cannot do that here. Run it as root on a machine with a cgroup memory controller, or pass --no-cgroup to run without any limit (numbers then say nothing about the budget).`);
      process.exit(1);
    }
    log(`\n*** WARNING: --no-cgroup: ${found}. Running WITHOUT any memory limit: peaks are not measured and the budgets are not enforced. ***\n`);
  } else if (args.noCgroup) log("\n*** WARNING: --no-cgroup: running WITHOUT any memory limit although a cgroup is available. ***\n");
  else kind = found;
  activeKind = kind;
  let runNo = 0;
  const cgroupFor = () => (kind ? { kind, parent: PARENT, name: `run-${++runNo}` } : undefined);
  process.on("SIGINT", () => {
    cleanup();
    process.exit(130);
  });

  const machine = {
    ...machineInfo(),
    kernel: release(),
    disk: safeExec("lsblk", ["-o", "NAME,SIZE,TYPE,ROTA,MODEL,MOUNTPOINT"]),
    cgroup: kind ? `v${kind.version} ${kind.base}` : "none (--no-cgroup)",
    loadAvgAtStart: loadavg(),
  };
  log(`machine: ${machine.cpuModel}, ${machine.nproc} cpus, kernel ${machine.kernel}, load ${machine.loadAvgAtStart.map((x) => x.toFixed(2)).join(" ")}, cgroup ${machine.cgroup}`);

  const specs = await models(args);
  // Each model is prepared right before its runs, so a slow conversion or calibration of a
  // later model never holds up the earlier ones.
  const prepared = new Map<string, PrepareResult>();
  const prepare = async (m: ModelSpec): Promise<PrepareResult> => {
    const done = prepared.get(m.key);
    if (done) return done;
    log(`preparing ${m.name} (flash conversion, calibration) ...`);
    const p = await prepareModel({ op: "prepare", modelPath: m.path, tokensPerPrompt: m.tokensPerPrompt }, log);
    log(`  weights ${gb(p.weightBytes)}, calibration: ${p.calibration}`);
    prepared.set(m.key, p);
    return p;
  };

  const measured: Measured[] = [];
  const promptIds = fixedIds(args.prompt, 4321, 20, 1000);
  // Load and warm-up get a fixed allowance on top of the measured run's cap (a thrashing
  // mmap warm-up of the 7B can otherwise eat the whole run budget).
  const runTotalCap = (m: ModelSpec) => args.cap + (m.key === "synth7b" ? 180 : 60);

  // Thread counts: each engine at its best of 1 and 2 threads, on a short SmolLM2 run at 100 %.
  let threads = args.threads;
  const probe: Measured[] = [];
  if (!threads) {
    const m = specs.find((s) => s.key === "smollm2") ?? specs[0]!;
    const ps = points((await prepare(m)).weightBytes, args).filter((p) => p.budgetPct === 100 && p.sparsity !== 0);
    const best: Record<BudgetEngine, { t: number; tps: number }> = { ours: { t: 1, tps: -1 }, llamacpp: { t: 1, tps: -1 } };
    for (const t of [1, 2]) {
      for (const p of ps) {
        const rec = await runInCgroup(request(m, p, t, promptIds, 16), { cgroup: cgroupFor(), limitBytes: p.limitBytes, capSeconds: args.cap, totalCapSeconds: runTotalCap(m) });
        log(`  threads probe ${m.name} ${p.label} threads ${t}: ${describe(rec)}`);
        probe.push({ model: m.name, point: p, threads: t, run: 0, record: rec });
        if (rec.status === "ok" && rec.decodeTokensPerSecond > best[p.engine].tps) best[p.engine] = { t, tps: rec.decodeTokensPerSecond };
      }
    }
    threads = { ours: best.ours.t, llamacpp: best.llamacpp.t };
  }
  log(`threads: ours ${threads.ours}, llama.cpp ${threads.llamacpp}`);

  for (const m of specs) {
    const ps = points((await prepare(m)).weightBytes, args);
    for (let run = 1; run <= m.runs; run++) {
      // Pairs at the same budget run back to back; which engine goes first alternates per run.
      const order = run % 2 === 1 ? ps : pairSwap(ps);
      for (const p of order) {
        const t = threads[p.engine];
        const rec = await runInCgroup(request(m, p, t, promptIds), {
          cgroup: cgroupFor(),
          limitBytes: p.limitBytes,
          capSeconds: args.cap,
          totalCapSeconds: runTotalCap(m),
        });
        log(`${m.name} run ${run}/${m.runs} ${p.label}: ${describe(rec)}`);
        measured.push({ model: m.name, point: p, threads: t, run, record: rec });
        // Save as we go, so a long run interrupted halfway still leaves its numbers.
        save(args, machine, specs, prepared, threads, probe, measured, false);
      }
    }
  }
  cleanup();
  const file = save(args, machine, specs, prepared, threads, probe, measured, true);
  log(`raw results: ${file}`);
  try {
    const pngs = await plotBudget(file, log);
    log(`plots: ${pngs.join(", ")}`);
  } catch (e) {
    log(`plot failed: ${(e as Error).message}`);
  }
}

// The same list with each ours/llama.cpp pair at one budget swapped.
function pairSwap(ps: Point[]): Point[] {
  const out = [...ps];
  for (let i = 0; i + 1 < out.length; i += 2) {
    if (out[i]!.budgetPct === out[i + 1]!.budgetPct && out[i]!.engine !== out[i + 1]!.engine) [out[i], out[i + 1]] = [out[i + 1]!, out[i]!];
  }
  return out;
}

function safeExec(cmd: string, argv: string[]): string {
  try {
    return execFileSync(cmd, argv, { encoding: "utf8" }).trim();
  } catch (e) {
    return `(${cmd} failed: ${(e as Error).message.split("\n")[0]})`;
  }
}

export interface Summary {
  model: string;
  label: string;
  engine: BudgetEngine;
  budgetPct: number | undefined;
  sparsity: number | undefined;
  limitBytes: number | undefined;
  threads: number;
  runs: number;
  statuses: string;
  decodeTokensPerSecond: number;
  prefillTokensPerSecond: number;
  peakBytes: number;
  decodeFlashBytesPerToken: number | undefined;
  meanReadBytes: number | undefined;
  cacheHitRate: number | undefined;
  decodeIoWaitSecondsPerToken: number | undefined;
  dramBudgetBytes: number | undefined;
  weightResidentBytesPeak: number | undefined;
}

function summarize(measured: Measured[]): Summary[] {
  const groups = new Map<string, Measured[]>();
  for (const m of measured) {
    const k = `${m.model}\u0000${m.point.label}`;
    groups.set(k, [...(groups.get(k) ?? []), m]);
  }
  const med = (xs: (number | undefined)[]) => {
    const v = xs.filter((x): x is number => x !== undefined && Number.isFinite(x));
    return v.length ? median(v) : undefined;
  };
  return [...groups.values()].map((g) => {
    const rs = g.map((m) => m.record);
    const counts = new Map<string, number>();
    for (const r of rs) counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
    const p = g[0]!.point;
    return {
      model: g[0]!.model,
      label: p.label,
      engine: p.engine,
      budgetPct: p.budgetPct,
      sparsity: p.sparsity,
      limitBytes: p.limitBytes,
      threads: g[0]!.threads,
      runs: rs.length,
      statuses: [...counts].map(([s, n]) => `${n} ${s}`).join(", "),
      // Medians over all runs; a timed-out run counts with its tokens-done / time speed and
      // a failed or OOM-killed one with 0.
      decodeTokensPerSecond: median(rs.map((r) => r.decodeTokensPerSecond)),
      prefillTokensPerSecond: med(rs.map((r) => r.prefillTokensPerSecond)) ?? 0,
      peakBytes: med(rs.map((r) => r.cgroup?.peakBytes)) ?? NaN,
      decodeFlashBytesPerToken: med(rs.map((r) => r.decodeFlashBytesPerToken)),
      meanReadBytes: med(rs.map((r) => r.flash?.meanReadBytes)),
      cacheHitRate: med(rs.map((r) => r.flash?.cacheHitRate)),
      decodeIoWaitSecondsPerToken: med(rs.map((r) => r.decodeIoWaitSecondsPerToken)),
      dramBudgetBytes: med(rs.map((r) => r.flash?.dramBudgetBytes)),
      weightResidentBytesPeak: med(rs.map((r) => r.flash?.weightResidentBytesPeak)),
    };
  });
}

interface Ratios {
  model: string;
  // ours (sp 0.5) / llama.cpp decode tok/s at each budget.
  oursOverLlamaCpp: Record<string, number>;
  // ours at 50 % / ours with the whole model in DRAM, same sparsity (target >= 0.7).
  ours50OverInDram: number | undefined;
  // ours at 100 % sparsity 0.5 / ours at 100 % sparsity 0 (dense in flash).
  sparseOverDense100: number | undefined;
}

function ratios(summaries: Summary[]): Ratios[] {
  const byModel = new Map<string, Summary[]>();
  for (const s of summaries) byModel.set(s.model, [...(byModel.get(s.model) ?? []), s]);
  return [...byModel].map(([model, ss]) => {
    const ours = (pct: number) => ss.find((s) => s.engine === "ours" && s.budgetPct === pct && s.sparsity === SPARSITY && s.limitBytes !== undefined);
    const llama = (pct: number) => ss.find((s) => s.engine === "llamacpp" && s.budgetPct === pct);
    const inDram = ss.find((s) => s.engine === "ours" && s.budgetPct === undefined);
    const dense = ss.find((s) => s.engine === "ours" && s.sparsity === 0);
    const o: Record<string, number> = {};
    for (const pct of BUDGETS) {
      const a = ours(pct), b = llama(pct);
      // Infinity (ours ran, llama.cpp made no token) is saved as null in the JSON.
      if (a && b) o[`${pct}%`] = a.decodeTokensPerSecond / b.decodeTokensPerSecond;
    }
    const o50 = ours(50), o100 = ours(100);
    return {
      model,
      oursOverLlamaCpp: o,
      ours50OverInDram: o50 && inDram ? o50.decodeTokensPerSecond / inDram.decodeTokensPerSecond : undefined,
      sparseOverDense100: o100 && dense ? o100.decodeTokensPerSecond / dense.decodeTokensPerSecond : undefined,
    };
  });
}

function save(
  args: Args,
  machine: object,
  specs: ModelSpec[],
  prepared: Map<string, PrepareResult>,
  threads: { ours: number; llamacpp: number },
  probe: Measured[],
  measured: Measured[],
  final: boolean,
): string {
  const summaries = summarize(measured);
  const rs = ratios(summaries);
  const dir = join(repoRoot(), "bench", "results");
  mkdirSync(dir, { recursive: true });
  const stamp = (machine as { date: string }).date.replace(/[:]/g, "-").replace(/\.\d+Z$/, "Z");
  const file = args.out ?? join(dir, `budget-${stamp}${args.quick ? "-quick" : ""}.json`);
  const body = {
    benchmark: "budget",
    complete: final,
    machine: { ...machine, loadAvgAtEnd: loadavg() },
    settings: {
      budgetsPct: BUDGETS,
      runtimeAllowanceBytes: RUNTIME_ALLOWANCE,
      sparsity: SPARSITY,
      capSeconds: args.cap,
      promptTokens: args.prompt,
      warmupTokens: WARMUP_TOKENS,
      contextLength: 128,
      threads,
      quick: args.quick,
    },
    models: specs.map((m) => ({ ...m, ...prepared.get(m.key) })),
    threadsProbe: probe,
    runs: measured,
    summaries,
    ratios: rs,
  };
  writeFileSync(file, JSON.stringify(body, null, 1) + "\n");
  if (final) printReport(summaries, rs);
  return file;
}

function printReport(summaries: Summary[], rs: Ratios[]): void {
  const f = (x: number | undefined, d = 2) => (x === undefined || !Number.isFinite(x) ? "-" : x.toFixed(d));
  for (const model of new Set(summaries.map((s) => s.model))) {
    const rows = summaries
      .filter((s) => s.model === model)
      .map((s) => [
        s.label,
        s.limitBytes === undefined ? "none" : mb(s.limitBytes),
        f(s.decodeTokensPerSecond),
        f(s.prefillTokensPerSecond, 1),
        mb(s.peakBytes),
        s.decodeFlashBytesPerToken === undefined ? "-" : mb(s.decodeFlashBytesPerToken),
        s.meanReadBytes === undefined ? "-" : `${(s.meanReadBytes / 1024).toFixed(0)}K`,
        f(s.cacheHitRate),
        s.decodeIoWaitSecondsPerToken === undefined ? "-" : `${(s.decodeIoWaitSecondsPerToken * 1000).toFixed(0)}ms`,
        String(s.threads),
        s.statuses,
      ]);
    process.stdout.write(`\n${model} (medians)\n`);
    process.stdout.write(
      table(["config", "cg limit", "decode t/s", "prefill t/s", "cg peak", "flash/tok", "mean read", "hit", "iowait/tok", "thr", "runs"], rows) + "\n",
    );
  }
  for (const r of rs) {
    // llama.cpp at 0 tok/s (OOM-killed, or no token before the cap) leaves no finite ratio.
    const parts = Object.entries(r.oursOverLlamaCpp).map(([k, v]) => (Number.isFinite(v) ? `${k} ${v.toFixed(2)}x` : `${k} n/a (llama.cpp made no token)`));
    process.stdout.write(`\n${r.model}: ours/llama.cpp decode: ${parts.join(", ")}\n`);
    process.stdout.write(`${r.model}: ours@50% / ours in DRAM (sp ${SPARSITY}): ${r.ours50OverInDram?.toFixed(2) ?? "-"}x (target >= 0.7)\n`);
    process.stdout.write(`${r.model}: ours@100% sp${SPARSITY} / sp0: ${r.sparseOverDense100?.toFixed(2) ?? "-"}x\n`);
  }
}

main().catch((e: unknown) => {
  cleanup();
  log(e instanceof Error ? (e.stack ?? e.message) : String(e));
  process.exit(1);
});
