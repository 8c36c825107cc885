// Runs bench/lib/pipelineWorker in a fresh memory cgroup (limit = budget + allowance, page
// cache included, caches dropped first) and turns its events and the cgroup's counters into
// one record; also the load-average gate every timed run passes first.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "./paths.js";
import { loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { MemoryCgroup, dropCaches, type CgroupKind, type CgroupReading } from "./budgetCgroup.js";
import { inGroup } from "./cgroupControl.js";
import { PIPELINE_MARKER, type PipelineEvent, type PipelineRequest } from "./pipelineTypes.js";
import { lines } from "./lines.js";

// dist/bench/lib/pipelineWorker.js after `npm run build`; the .ts under tsx.
function workerArgv(): string[] {
  const js = fileURLToPath(new URL("./pipelineWorker.js", import.meta.url));
  if (existsSync(js)) return [process.execPath, js];
  return [process.execPath, "--import", "tsx", fileURLToPath(new URL("./pipelineWorker.ts", import.meta.url))];
}

// The addon's build time: the native code is rebuilt by others while a long benchmark runs,
// so every run records which build it loaded.
export function addonBuiltAt(): string | undefined {
  try {
    return statSync(join(repoRoot(), "build", "Release", "activeflow.node")).mtime.toISOString();
  } catch {
    return undefined;
  }
}

export type Done = Extract<PipelineEvent, { ev: "done" }>;

export interface WorkerRecord {
  status: "ok" | "oom-killed" | "timed out" | "failed";
  detail?: string;
  limitBytes: number;
  cgroup: CgroupReading;
  wallSeconds: number;
  loadSeconds?: number;
  // Tokens generated before a failure (the last progress event).
  tokensSeen: number;
  addonBuiltAt: string | undefined;
  done?: Done;
  stderrTail?: string;
}

export async function runWorkerInCgroup(
  req: PipelineRequest,
  cg: { kind: CgroupKind; parent: string; name: string },
  limitBytes: number,
  nice: number,
  capSeconds: number,
): Promise<WorkerRecord> {
  execFileSync("sync");
  const dropped = dropCaches();
  if (dropped !== undefined) throw new Error(`cannot drop the page cache (/proc/sys/vm/drop_caches): ${dropped}`);
  const g = MemoryCgroup.create(cg.kind, cg.parent, cg.name, limitBytes);
  try {
    const built = addonBuiltAt();
    const [cmd, args] = inGroup(g, [...workerArgv(), JSON.stringify(req)], nice);
    const t0 = performance.now();
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "", tokensSeen = 0;
    let loadSeconds: number | undefined, done: Done | undefined;
    lines(child.stdout, (l) => {
      if (!l.startsWith(PIPELINE_MARKER)) return;
      const e = JSON.parse(l.slice(PIPELINE_MARKER.length)) as PipelineEvent;
      if (e.ev === "loaded") loadSeconds = e.loadSeconds;
      else if (e.ev === "first") tokensSeen = 1;
      else if (e.ev === "token") tokensSeen = e.n;
      else done = e;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr = (stderr + d).slice(-20000)));
    let anonMax = 0, fileMax = 0, timedOut = false;
    const timer = setInterval(() => {
      const s = g.sample();
      if (s) {
        anonMax = Math.max(anonMax, s.anon);
        fileMax = Math.max(fileMax, s.file);
      }
      if (!timedOut && performance.now() - t0 > capSeconds * 1000) {
        timedOut = true;
        child.kill("SIGKILL");
      }
    }, 200);
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((r) => child.on("close", (c, s) => r([c, s])));
    clearInterval(timer);
    const reading = g.read();
    reading.sampledAnonBytesMax = anonMax;
    reading.sampledFileBytesMax = fileMax;
    const rec: WorkerRecord = { status: "ok", limitBytes, cgroup: reading, wallSeconds: (performance.now() - t0) / 1000, tokensSeen, addonBuiltAt: built };
    if (loadSeconds !== undefined) rec.loadSeconds = loadSeconds;
    if (done) rec.done = done;
    if (timedOut) {
      rec.status = "timed out";
      rec.detail = `passed the ${capSeconds} s cap after ${tokensSeen} tokens`;
    } else if ((reading.oomKills ?? 0) > 0 || (signal === "SIGKILL" && !done)) {
      rec.status = "oom-killed";
      rec.detail = `killed (${signal ?? code}); cgroup oom_kill ${reading.oomKills ?? "?"}, failcnt ${reading.failcnt ?? "?"}; ${tokensSeen} tokens done`;
    } else if (!done || code !== 0) {
      rec.status = done ? "ok" : "failed";
      rec.detail = `exit ${code ?? signal}: ${stderr.trim().split("\n").find((l) => /Error|error:/.test(l)) ?? stderr.trim().slice(-300)}`;
    }
    if (rec.status !== "ok" || code !== 0) rec.stderrTail = stderr.trim().slice(-3000);
    return rec;
  } finally {
    await g.remove();
  }
}

export interface LoadGate {
  // 1-minute load average when the run started, and seconds spent waiting for it to fall.
  loadAverage1: number;
  waitedSeconds: number;
  // True when the wait allowance ran out and the run started above the threshold anyway.
  startedAboveThreshold: boolean;
}

// Waits (polling every 30 s) while the 1-minute load average is above `threshold`, spending at
// most what is left of a shared allowance; the caller records the result beside the run.
export async function waitForQuiet(threshold: number, allowance: { seconds: number }, log: (s: string) => void): Promise<LoadGate> {
  let waited = 0;
  for (;;) {
    const l = loadavg()[0]!;
    if (l <= threshold) return { loadAverage1: l, waitedSeconds: waited, startedAboveThreshold: false };
    if (allowance.seconds <= 0) return { loadAverage1: l, waitedSeconds: waited, startedAboveThreshold: true };
    const step = Math.min(30, allowance.seconds);
    log(`  load average ${l.toFixed(2)} > ${threshold}: waiting ${step.toFixed(0)} s (wait allowance left ${allowance.seconds.toFixed(0)} s)`);
    await new Promise((r) => setTimeout(r, step * 1000));
    waited += step;
    allowance.seconds -= step;
  }
}
