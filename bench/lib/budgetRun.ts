// Runs bench/budgetWorker in a child process inside a fresh memory cgroup and turns its
// event lines, exit status and the cgroup's counters into one record.
import { execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import type { FlashRunStats } from "../../src/engine/types.js";
import { MemoryCgroup, dropCaches, type CgroupKind, type CgroupReading } from "./budgetCgroup.js";
import { EVENT_MARKER, PREPARE_MARKER, type BudgetEvent, type PrepareRequest, type PrepareResult, type RunRequest } from "./budgetTypes.js";
import { lines } from "./lines.js";

// dist/bench/budgetWorker.js after `npm run build`; bench/budgetWorker.ts under tsx.
function workerArgs(): string[] {
  const js = fileURLToPath(new URL("../budgetWorker.js", import.meta.url));
  if (existsSync(js)) return [js];
  return ["--import", "tsx", fileURLToPath(new URL("../budgetWorker.ts", import.meta.url))];
}

export type RunStatus = "ok" | "timed out" | "oom-killed" | "failed";

export interface RunRecord {
  status: RunStatus;
  // Why it failed or was killed: the worker's error text, the signal, the cap.
  detail?: string;
  limitBytes: number | undefined;
  cgroup: CgroupReading | undefined;
  exitCode: number | null;
  signal: string | null;
  wallSeconds: number;
  loadSeconds?: number;
  prefillSeconds?: number;
  prefillTokensPerSecond?: number;
  // Generated tokens of the measured run (the first one comes from prefill).
  tokens: number;
  // (tokens - 1) / seconds from the first token to the last one, or to the kill for a run
  // cut by the wall-time cap.
  decodeTokensPerSecond: number;
  decodeSeconds?: number;
  isa?: string;
  // Ours: the engine's counters at the end (or at the last token before a kill).
  flash?: FlashRunStats;
  // Ours: flash bytes / I/O wait / reads per decode token (counters after the first token
  // subtracted, so prefill's reads are not spread over the decode tokens).
  decodeFlashBytesPerToken?: number;
  decodeIoWaitSecondsPerToken?: number;
  decodeReadsPerToken?: number;
  loadAvg: [number, number, number];
  stderrTail?: string;
}

export interface SpawnOptions {
  cgroup: { kind: CgroupKind; parent: string; name: string } | undefined;
  limitBytes: number | undefined;
  // Wall-time cap of the measured run (from the end of warm-up).
  capSeconds: number;
  // Wall-time cap of the whole child (load + warm-up + measured run).
  totalCapSeconds: number;
}

export async function prepareModel(req: PrepareRequest, log: (s: string) => void): Promise<PrepareResult> {
  const child = spawn(process.execPath, [...workerArgs(), JSON.stringify(req)], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => {
    stderr += d;
    for (const l of d.split("\n")) if (l.trim()) log(`  ${l.trim()}`);
  });
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  const line = stdout.split("\n").find((l) => l.startsWith(PREPARE_MARKER));
  if (code !== 0 || line === undefined) throw new Error(`preparing ${req.modelPath} failed (exit ${code}):\n${stderr.trim().slice(-2000)}`);
  return JSON.parse(line.slice(PREPARE_MARKER.length)) as PrepareResult;
}

export async function runInCgroup(req: RunRequest, opts: SpawnOptions): Promise<RunRecord> {
  execFileSync("sync");
  const dropped = dropCaches();
  if (dropped !== undefined && opts.cgroup) throw new Error(`cannot drop the page cache (/proc/sys/vm/drop_caches): ${dropped}`);
  const group = opts.cgroup ? MemoryCgroup.create(opts.cgroup.kind, opts.cgroup.parent, opts.cgroup.name, opts.limitBytes) : undefined;
  try {
    return await spawnWorker(req, opts, group);
  } finally {
    await group?.remove();
  }
}

async function spawnWorker(req: RunRequest, opts: SpawnOptions, group: MemoryCgroup | undefined): Promise<RunRecord> {
  const node = [process.execPath, ...workerArgs(), JSON.stringify(req)];
  // The shell joins the group, then execs node: the worker is in the limit from its first page.
  const child = group
    ? spawn("sh", ["-c", 'echo $$ > "$0" && exec "$@"', group.procsFile, ...node], { stdio: ["ignore", "pipe", "pipe"] })
    : spawn(node[0]!, node.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
  const t0 = performance.now();
  let tWarm: number | undefined;
  let tFirst: number | undefined;
  let last: Extract<BudgetEvent, { ev: "token" }> | undefined;
  let first: Extract<BudgetEvent, { ev: "token" }> | undefined;
  let loaded: number | undefined;
  let prefill: number | undefined;
  let done: Extract<BudgetEvent, { ev: "done" }> | undefined;
  let disposed = false;
  let stderr = "";
  lines(child.stdout, (l) => {
    if (!l.startsWith(EVENT_MARKER)) return;
    const e = JSON.parse(l.slice(EVENT_MARKER.length)) as BudgetEvent;
    if (e.ev === "loaded") loaded = e.loadSeconds;
    else if (e.ev === "warm") tWarm = performance.now();
    else if (e.ev === "first") {
      tFirst = performance.now();
      prefill = e.prefillSeconds;
    } else if (e.ev === "token") {
      last = e;
      if (e.n === 1) first = e;
    } else if (e.ev === "disposed") disposed = true;
    else done = e;
  });
  child.stderr.setEncoding("utf8").on("data", (d: string) => {
    stderr = (stderr + d).slice(-20000);
  });
  let timedOut: string | undefined;
  let tKill: number | undefined;
  let anonMax: number | undefined;
  let fileMax: number | undefined;
  const timer = setInterval(() => {
    const now = performance.now();
    const m = group?.sample();
    if (m) {
      anonMax = Math.max(anonMax ?? 0, m.anon);
      fileMax = Math.max(fileMax ?? 0, m.file);
    }
    const cut =
      tWarm !== undefined && now - tWarm > opts.capSeconds * 1000
        ? `measured run passed the ${opts.capSeconds} s cap`
        : now - t0 > opts.totalCapSeconds * 1000
          ? `child passed the ${opts.totalCapSeconds} s cap (${tWarm === undefined ? (loaded === undefined ? "still loading" : "still in warm-up") : "measuring"})`
          : undefined;
    if (cut !== undefined && timedOut === undefined) {
      timedOut = cut;
      tKill = now;
      child.kill("SIGKILL");
    }
  }, 200);
  const [exitCode, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on("close", (c, s) => resolve([c, s])));
  clearInterval(timer);
  const tEnd = tKill ?? performance.now();
  const cg = group?.read();
  if (cg && anonMax !== undefined) cg.sampledAnonBytesMax = anonMax;
  if (cg && fileMax !== undefined) cg.sampledFileBytesMax = fileMax;
  const tokens = last?.n ?? 0;
  const rec: RunRecord = {
    status: "ok",
    limitBytes: opts.limitBytes,
    cgroup: cg,
    exitCode,
    signal,
    wallSeconds: (performance.now() - t0) / 1000,
    tokens,
    decodeTokensPerSecond: 0,
    loadAvg: loadavg() as [number, number, number],
  };
  if (loaded !== undefined) rec.loadSeconds = loaded;
  if (prefill !== undefined) {
    rec.prefillSeconds = prefill;
    rec.prefillTokensPerSecond = req.promptIds.length / prefill;
  }
  if (done?.isa) rec.isa = done.isa;
  if (last && tokens > 1) {
    // A finished run: the worker's own clock; a killed one: up to the kill.
    const secs = done ? last.decodeSeconds : (tEnd - (tFirst ?? tEnd)) / 1000;
    rec.decodeSeconds = secs;
    rec.decodeTokensPerSecond = secs > 0 ? (tokens - 1) / secs : 0;
  }
  const flash = done?.flash ?? last?.flash;
  if (flash) rec.flash = flash;
  if (last?.flash && first?.flash && tokens > 1) {
    rec.decodeFlashBytesPerToken = (last.flash.flashBytesRead - first.flash.flashBytesRead) / (tokens - 1);
    rec.decodeIoWaitSecondsPerToken = (last.flash.ioWaitSeconds - first.flash.ioWaitSeconds) / (tokens - 1);
    rec.decodeReadsPerToken = (last.flash.flashReads - first.flash.flashReads) / (tokens - 1);
  }
  const oomKilled = signal === "SIGKILL" && timedOut === undefined;
  if (timedOut !== undefined) {
    rec.status = "timed out";
    rec.detail = `${timedOut}; ${tokens} tokens done`;
  } else if (oomKilled || (cg?.oomKills ?? 0) > 0) {
    rec.status = "oom-killed";
    rec.detail = `killed by ${signal ?? `exit ${exitCode}`}; cgroup oom_kill ${cg?.oomKills ?? "?"}, failcnt ${cg?.failcnt ?? "?"}; ${tokens} tokens done`;
  } else if (!done) {
    rec.status = "failed";
    rec.detail = `exit ${exitCode ?? signal}: ${lastError(stderr)}`;
  } else if (exitCode !== 0) {
    // The measured run finished and its numbers stand; the crash came after the last token.
    rec.detail = `the run finished, then the worker died (${signal ?? `exit ${exitCode}`}) ${disposed ? "after dispose, at process exit" : "in engine dispose"}: ${lastError(stderr)}`;
  }
  if (rec.status !== "ok" || exitCode !== 0) rec.stderrTail = stderr.trim().slice(-3000);
  return rec;
}

// The error line of a worker's stack trace (its first line naming an error).
function lastError(stderr: string): string {
  const lines = stderr.trim().split("\n");
  const err = lines.find((l) => /Error|error:/.test(l));
  return (err ?? lines[lines.length - 1] ?? "").trim().slice(0, 500);
}
