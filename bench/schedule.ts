// Adaptive budget, demo 1: `activeflow run --dram-schedule 0:60%,32:20%,64:60%` on SmolLM2
// inside a real cgroup memory limit that the harness lowers for the low phase (once the
// engine says it has shrunk) and raises after. Shows the run completes inside the lowered
// limit, its RSS falls, and its tokens equal a fixed-budget run's. A control run keeps the
// high budget while the limit is lowered the same way.
// Usage: npx tsx bench/schedule.ts [--model <gguf>] [--schedule 0:60%,32:20%,64:60%] [-n 96]
//        [--allowance-mb 128] [--no-control]     (root: creates a memory cgroup)
import { spawn } from "node:child_process";
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { ensureConverted } from "../src/flash/cache.js";
import { openFlashModel } from "../src/flash/open.js";
import { parseBudget, weightBytesOf } from "../src/memory/budget.js";
import { parseDramSchedule } from "../src/memory/schedule.js";
import { MemoryCgroup, dropCaches, findCgroup, removeParent, type CgroupKind } from "./lib/budgetCgroup.js";
import { inGroup, limitHits, peakOf, resetPeak, setLimit, usageOf } from "./lib/cgroupControl.js";
import { machineInfo } from "./lib/machine.js";
import { repoRoot } from "./lib/paths.js";
import { lines } from "./lib/lines.js";
import { defaultBackend } from "../src/backends/default.js";

const MiB = 1 << 20;
const PARENT = "activeflow-schedule";
const PROMPT = "The history of the city begins";

interface Args { model: string; schedule: string; tokens: number; allowanceMiB: number; control: boolean; sparsity: number }

function parseArgs(argv: string[]): Args {
  const a: Args = {
    model: join(homedir(), ".cache/activeflow/models/SmolLM2-135M-Instruct.Q4_1.gguf"),
    schedule: "0:60%,32:20%,64:60%", tokens: 96, allowanceMiB: 128, control: true, sparsity: 0.5,
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = () => argv[++i] ?? (() => { throw new Error(`${k} needs a value`); })();
    if (k === "--model") a.model = v();
    else if (k === "--schedule") a.schedule = v();
    else if (k === "-n") a.tokens = Number(v());
    else if (k === "--allowance-mb") a.allowanceMiB = Number(v());
    else if (k === "--sparsity") a.sparsity = Number(v());
    else if (k === "--no-control") a.control = false;
    else throw new Error(`unknown option ${k}`);
  }
  return a;
}

interface PhaseCgroup { fromToken: number; limitBytes: number; usageAtStartBytes?: number | undefined; peakReset?: boolean; limitSet: { ok: boolean; tries: number; error?: string }; peakBytes?: number | undefined; limitHits?: number | undefined; anonMaxBytes: number; fileMaxBytes: number }

interface RunResult {
  label: string;
  argv: string[];
  status: "ok" | "oom-killed" | "failed";
  exitCode: number | null;
  signal: string | null;
  wallSeconds: number;
  tokens: number[];
  record: Record<string, unknown> | undefined;
  cgroupPhases: PhaseCgroup[];
  oomKills: number | undefined;
  stderrTail: string;
}

// Runs the CLI in a fresh cgroup; each "dram schedule: from token T" line closes a phase (its
// cgroup peak and limit hits) and sets the limit for the next one.
async function runScheduled(kind: CgroupKind, name: string, label: string, cli: string[], limitFor: (token: number) => number): Promise<RunResult> {
  dropCaches();
  const g = MemoryCgroup.create(kind, PARENT, name, limitFor(0));
  const argv = [process.execPath, join(repoRoot(), "bin/activeflow.js"), ...cli];
  const [cmd, args] = inGroup(g, argv);
  const t0 = performance.now();
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  const phases: PhaseCgroup[] = [{ fromToken: 0, limitBytes: limitFor(0), limitSet: { ok: true, tries: 1 }, anonMaxBytes: 0, fileMaxBytes: 0 }];
  let stdout = "", stderr = "";
  let chain = Promise.resolve();
  const closePhase = () => {
    const p = phases[phases.length - 1]!;
    p.peakBytes = peakOf(g);
    p.limitHits = limitHits(g);
  };
  child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  lines(child.stderr, (line) => {
    process.stderr.write(`  [${label}] ${line}\n`);
    const m = /^dram schedule: from token (\d+),/.exec(line);
    if (!m || m[1] === "0") return;
    const token = Number(m[1]);
    chain = chain.then(async () => {
      closePhase();
      const limit = limitFor(token);
      const usageAtStartBytes = usageOf(g);
      const set = await setLimit(g, limit);
      const peakReset = resetPeak(g);
      phases.push({ fromToken: token, limitBytes: limit, usageAtStartBytes, peakReset, limitSet: set, anonMaxBytes: 0, fileMaxBytes: 0 });
      process.stderr.write(`  [${label}] cgroup limit -> ${(limit / MiB).toFixed(1)} MiB at token ${token}: ${set.ok ? "ok" : `FAILED (${set.error}) with usage ${((usageOf(g) ?? 0) / MiB).toFixed(1)} MiB`}\n`);
    });
  });
  child.stderr.on("data", (d: string) => (stderr += d));
  const sampler = setInterval(() => {
    const s = g.sample();
    const p = phases[phases.length - 1]!;
    if (s) {
      p.anonMaxBytes = Math.max(p.anonMaxBytes, s.anon);
      p.fileMaxBytes = Math.max(p.fileMaxBytes, s.file);
    }
  }, 100);
  const [exitCode, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((r) => child.on("close", (c, s) => r([c, s])));
  clearInterval(sampler);
  await chain;
  closePhase();
  const oomKills = g.read().oomKills;
  await g.remove();
  const last = stdout.trim().split("\n").pop() ?? "";
  let record: Record<string, unknown> | undefined;
  try {
    record = JSON.parse(last) as Record<string, unknown>;
  } catch {
    record = undefined;
  }
  const status = record ? "ok" : signal === "SIGKILL" || (oomKills ?? 0) > 0 ? "oom-killed" : "failed";
  return {
    label, argv: cli, status, exitCode, signal, wallSeconds: (performance.now() - t0) / 1000,
    tokens: (record?.tokens as number[] | undefined) ?? [], record, cgroupPhases: phases, oomKills, stderrTail: stderr.slice(-3000),
  };
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const kind = findCgroup();
  if (typeof kind === "string") throw new Error(kind);
  const schedule = parseDramSchedule(a.schedule);
  // The converted file and its weight bytes (what "60%" is a percentage of), outside any limit.
  const converted = await ensureConverted(defaultBackend(), a.model, { log: (s) => process.stderr.write(`${s}\n`) });
  const weightBytes = weightBytesOf(await openFlashModel(converted));
  const allowance = a.allowanceMiB * MiB;
  const budgetAt = (token: number) => {
    let b = schedule[0]!.budget;
    for (const e of schedule) if (e.token <= token) b = e.budget;
    return parseBudget(b, weightBytes);
  };
  const limitFor = (token: number) => budgetAt(token) + allowance;
  const common = ["run", a.model, "-p", PROMPT, "-n", String(a.tokens), "--sparsity", String(a.sparsity), "--greedy", "--json"];
  const high = schedule[0]!.budget;
  const runs: RunResult[] = [];
  try {
    // 1. Fixed budget (the first entry's) under the high limit: the reference tokens.
    runs.push(await runScheduled(kind, "fixed", "fixed", [...common, "--dram", high], () => limitFor(0)));
    // 2. The schedule, with the limit following it.
    runs.push(await runScheduled(kind, "scheduled", "scheduled", [...common, "--dram-schedule", a.schedule], limitFor));
    // 3. Control: the same limit changes while the engine keeps the high budget throughout.
    if (a.control) {
      const flat = schedule.map((e) => `${e.token}:${high}`).join(",");
      runs.push(await runScheduled(kind, "control", "control (budget stays high)", [...common, "--dram-schedule", flat], limitFor));
    }
  } finally {
    removeParent(kind, PARENT);
  }
  const [fixed, scheduled, control] = runs;
  const same = fixed!.tokens.length === a.tokens && JSON.stringify(fixed!.tokens) === JSON.stringify(scheduled!.tokens);
  const result = {
    bench: "schedule",
    date: new Date().toISOString(),
    machine: machineInfo(),
    model: a.model,
    converted,
    weightBytes,
    schedule: a.schedule,
    sparsity: a.sparsity,
    allowanceBytes: allowance,
    cgroup: { version: kind.version },
    tokensEqualFixed: same,
    runs,
  };
  const dir = join(repoRoot(), "bench/results");
  mkdirSync(dir, { recursive: true });
  const out = join(dir, `schedule-${result.date.replace(/[:.]/g, "-").slice(0, 19)}Z.json`);
  writeFileSync(`${out}.tmp`, JSON.stringify(result, null, 2));
  renameSync(`${out}.tmp`, out);

  const mb = (b: number | undefined) => (b === undefined ? "-" : `${(b / MiB).toFixed(1)}`);
  console.log(`model ${a.model} (${mb(weightBytes)} MiB of weights in the flash layout), schedule ${a.schedule}, sparsity ${a.sparsity}, allowance ${a.allowanceMiB} MiB`);
  for (const r of runs) {
    console.log(`${r.label}: ${r.status}, ${r.tokens.length} tokens, ${r.wallSeconds.toFixed(1)} s, OOM kills ${r.oomKills ?? "?"}`);
    const phases = (r.record?.phases as { from_token: number; budget: string; cache_bytes: number; tokens_per_s: number; rss_peak_bytes: number; rss_end_bytes: number }[] | undefined) ?? [];
    for (const c of r.cgroupPhases) {
      const p = phases.find((x) => x.from_token === c.fromToken);
      console.log(
        `  from token ${c.fromToken}: limit ${mb(c.limitBytes)} MiB${c.limitSet.ok ? "" : ` (NOT SET: ${c.limitSet.error})`}, usage at start ${mb(c.usageAtStartBytes)}, cgroup peak ${mb(c.peakBytes)} MiB${c.peakReset === false ? " (peak not reset)" : ""}, anon max ${mb(c.anonMaxBytes)}, ` +
          `page cache max ${mb(c.fileMaxBytes)}, limit hits ${c.limitHits ?? "-"}` +
          (p ? ` | budget ${p.budget}, cache ${mb(p.cache_bytes)} MiB, ${p.tokens_per_s.toFixed(2)} tok/s, RSS peak ${mb(p.rss_peak_bytes)} end ${mb(p.rss_end_bytes)} MiB` : ""),
      );
    }
  }
  console.log(`tokens of the scheduled run equal the fixed-budget run's: ${same}`);
  if (control) console.log(`control: ${control.status}${control.status === "ok" ? "" : ` (${control.cgroupPhases.map((c) => c.limitSet.error).filter(Boolean).join("; ")})`}`);
  console.log(`wrote ${out}`);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exit(1);
});
