// Memory-pressure watcher: reads the kernel's pressure stall information (PSI) and, inside a
// memory cgroup, the group's working set against its limit; shrinks the hot cache under
// pressure (halving it) and grows it back toward what the budget allows once pressure has
// been gone for a while. The policy is a pure function of readings so tests can drive it.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { ActiveflowError } from "../errors.js";

// ---- Parsers (sample texts in test/adaptive-budget.test.ts) ----

export interface PsiLine {
  avg10: number;
  avg60: number;
  avg300: number;
  totalUs: number; // cumulative stall time in microseconds
}

// /proc/pressure/memory or a v2 cgroup's memory.pressure:
// "some avg10=0.00 avg60=0.00 avg300=0.00 total=123\nfull avg10=... total=45".
export function parsePsi(text: string): { some: PsiLine; full: PsiLine | undefined } {
  const lines = new Map<string, PsiLine>();
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "") continue;
    const m = /^(some|full)\s+avg10=([\d.]+)\s+avg60=([\d.]+)\s+avg300=([\d.]+)\s+total=(\d+)$/.exec(line);
    if (!m) throw new ActiveflowError("BAD_ARGUMENT", `pressure file: unexpected line "${line}" (expected "some|full avg10=.. avg60=.. avg300=.. total=..")`);
    lines.set(m[1]!, { avg10: Number(m[2]), avg60: Number(m[3]), avg300: Number(m[4]), totalUs: Number(m[5]) });
  }
  const some = lines.get("some");
  if (!some) throw new ActiveflowError("BAD_ARGUMENT", `pressure file has no "some" line: "${text.trim()}"`);
  return { some, full: lines.get("full") };
}

// "key value" lines: v1/v2 memory.stat, v2 memory.events.
export function parseKeyed(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^(\S+)\s+(\d+)$/.exec(line.trim());
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

// A byte count or limit: v2 "max" and v1's "no limit" (PAGE_COUNTER_MAX pages, ~2^63) mean
// no limit (Infinity).
export function parseLimit(text: string): number {
  const t = text.trim();
  if (t === "max") return Infinity;
  if (!/^\d+$/.test(t)) throw new ActiveflowError("BAD_ARGUMENT", `cgroup memory file: expected a byte count or "max", got "${t}"`);
  const v = Number(t);
  return v >= 2 ** 62 ? Infinity : v;
}

// /proc/self/cgroup: the v1 memory controller's path ("4:memory:/a/b") and the v2 path ("0::/a").
export function parseProcCgroup(text: string): { v1Memory: string | undefined; v2: string | undefined } {
  let v1Memory: string | undefined, v2: string | undefined;
  for (const line of text.split("\n")) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line.trim());
    if (!m) continue;
    if (m[1] === "0" && m[2] === "") v2 = m[3];
    else if (m[2]!.split(",").includes("memory")) v1Memory = m[3];
  }
  return { v1Memory, v2 };
}

// ---- Readings ----

export interface PressureSample {
  atMs: number;
  // Memory stall, system-wide (/proc/pressure/memory) or of the cgroup (v2 memory.pressure).
  psi?: { someAvg10: number; fullAvg10: number; someTotalUs: number; fullTotalUs: number };
  // The cgroup level with the least headroom: working set (usage minus inactive page cache,
  // which the kernel drops first) against its limit; OOM kills seen there so far.
  cgroup?: { workingSetBytes: number; limitBytes: number; oomKills: number };
}

export interface PressureSources {
  psiFile: string | undefined;
  cgroup: { version: 1 | 2; dirs: string[] } | undefined; // own group first, then its parents
}

const V1_MEMORY = "/sys/fs/cgroup/memory";
const V2_ROOT = "/sys/fs/cgroup";

// Where this process's memory pressure can be read; undefined fields are not available here.
export function findPressureSources(procCgroupText?: string): PressureSources {
  let text = procCgroupText;
  if (text === undefined) {
    try {
      text = readFileSync("/proc/self/cgroup", "utf8");
    } catch {
      text = "";
    }
  }
  const { v1Memory, v2 } = parseProcCgroup(text);
  let cgroup: PressureSources["cgroup"];
  let psiFile = existsSync("/proc/pressure/memory") ? "/proc/pressure/memory" : undefined;
  const chain = (root: string, rel: string, probe: string): string[] => {
    const dirs: string[] = [];
    for (let d = join(root, rel); d.startsWith(root); d = dirname(d)) {
      if (existsSync(join(d, probe))) dirs.push(d);
      if (d === root) break;
    }
    return dirs;
  };
  if (v1Memory !== undefined) {
    const dirs = chain(V1_MEMORY, v1Memory, "memory.limit_in_bytes");
    if (dirs.length > 0) cgroup = { version: 1, dirs };
  } else if (v2 !== undefined) {
    const dirs = chain(V2_ROOT, v2, "memory.max");
    if (dirs.length > 0) {
      cgroup = { version: 2, dirs };
      const own = join(dirs[0]!, "memory.pressure");
      if (existsSync(own)) psiFile = own;
    }
  }
  return { psiFile, cgroup };
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

export function readPressure(sources: PressureSources, atMs = performance.now()): PressureSample {
  const sample: PressureSample = { atMs };
  const psiText = sources.psiFile ? read(sources.psiFile) : undefined;
  if (psiText !== undefined) {
    const p = parsePsi(psiText);
    sample.psi = { someAvg10: p.some.avg10, fullAvg10: p.full?.avg10 ?? 0, someTotalUs: p.some.totalUs, fullTotalUs: p.full?.totalUs ?? 0 };
  }
  if (sources.cgroup) {
    const v1 = sources.cgroup.version === 1;
    let best: PressureSample["cgroup"];
    for (const dir of sources.cgroup.dirs) {
      const limitText = read(join(dir, v1 ? "memory.limit_in_bytes" : "memory.max"));
      const usageText = read(join(dir, v1 ? "memory.usage_in_bytes" : "memory.current"));
      if (limitText === undefined || usageText === undefined) continue;
      const limitBytes = parseLimit(limitText);
      if (limitBytes === Infinity) continue;
      const stat = parseKeyed(read(join(dir, "memory.stat")) ?? "");
      const inactive = (v1 ? stat.get("total_inactive_file") : stat.get("inactive_file")) ?? 0;
      const workingSetBytes = Math.max(0, parseLimit(usageText) - inactive);
      const oomKills = (v1 ? parseKeyed(read(join(dir, "memory.oom_control")) ?? "") : parseKeyed(read(join(dir, "memory.events")) ?? "")).get("oom_kill") ?? 0;
      if (!best || limitBytes - workingSetBytes < best.limitBytes - best.workingSetBytes) best = { workingSetBytes, limitBytes, oomKills };
    }
    if (best) sample.cgroup = best;
  }
  return sample;
}

// ---- Policy ----

export interface PressurePolicy {
  // Stall share (stalled microseconds per microsecond between two readings, "some") that
  // counts as pressure. Defaults to 0.10.
  stallShare: number;
  // full avg10 (percent) that counts as pressure on its own. Defaults to 5.
  fullAvg10: number;
  // Working set / limit above which the cgroup is under pressure. Defaults to 0.90.
  highWater: number;
  // Growing stops where it would take the working set past this share of the limit. Defaults to 0.75.
  lowWater: number;
  // Pressure must be gone this long before each step back up. Defaults to 5000 ms.
  calmMs: number;
  // At most one shrink per this many ms (the last one needs a token boundary to take effect). Defaults to 1000 ms.
  cooldownMs: number;
  // Working set / limit above which the cooldown is skipped: the limit is about to be hit. Defaults to 0.97.
  emergencyWater: number;
  // A cache this small is dropped outright rather than halved again. Defaults to 1 MiB.
  minStepBytes: number;
}

export const DEFAULT_POLICY: PressurePolicy = {
  stallShare: 0.1,
  fullAvg10: 5,
  highWater: 0.9,
  lowWater: 0.75,
  calmMs: 5000,
  cooldownMs: 1000,
  emergencyWater: 0.97,
  minStepBytes: 1 << 20,
};

export interface PressureState {
  // What the budget allows the cache (the target when there is no pressure).
  requestedBytes: number;
  // What the watcher allows now (<= requestedBytes).
  cacheBytes: number;
  prev: PressureSample | undefined;
  calmSinceMs: number | undefined;
  lastShrinkMs: number | undefined;
}

export interface PressureDecision {
  state: PressureState;
  // Present when the allowed cache size changed.
  change?: { cacheBytes: number; reason: string };
}

export function initialState(requestedBytes: number): PressureState {
  return { requestedBytes, cacheBytes: requestedBytes, prev: undefined, calmSinceMs: undefined, lastShrinkMs: undefined };
}

// A new budget: with no reduction in force the watcher follows it; otherwise it keeps the
// reduction, capped by the new target.
export function retarget(state: PressureState, requestedBytes: number): PressureState {
  const reduced = state.cacheBytes < state.requestedBytes;
  return { ...state, requestedBytes, cacheBytes: reduced ? Math.min(state.cacheBytes, requestedBytes) : requestedBytes };
}

const MiB = 1 << 20;
const mb = (b: number) => `${(b / MiB).toFixed(1)} MiB`;

// Why `sample` shows pressure, or undefined when it does not.
export function pressureReason(sample: PressureSample, prev: PressureSample | undefined, policy: PressurePolicy): string | undefined {
  const cg = sample.cgroup;
  if (cg && prev?.cgroup && cg.oomKills > prev.cgroup.oomKills) return `an OOM kill in the cgroup (${cg.oomKills - prev.cgroup.oomKills} new)`;
  if (cg && cg.workingSetBytes > policy.highWater * cg.limitBytes) {
    return `cgroup working set ${mb(cg.workingSetBytes)} above ${Math.round(policy.highWater * 100)}% of its ${mb(cg.limitBytes)} limit`;
  }
  const psi = sample.psi;
  if (psi && prev?.psi && sample.atMs > prev.atMs) {
    const share = (psi.someTotalUs - prev.psi.someTotalUs) / ((sample.atMs - prev.atMs) * 1000);
    if (share > policy.stallShare) return `memory stall ${(share * 100).toFixed(0)}% of the last ${(sample.atMs - prev.atMs).toFixed(0)} ms (PSI some)`;
  }
  if (psi && psi.fullAvg10 > policy.fullAvg10) return `PSI full avg10 ${psi.fullAvg10.toFixed(2)}%`;
  return undefined;
}

export function decide(state: PressureState, sample: PressureSample, policy: PressurePolicy = DEFAULT_POLICY): PressureDecision {
  const why = pressureReason(sample, state.prev, policy);
  const next: PressureState = { ...state, prev: sample };
  const now = sample.atMs;
  if (why !== undefined) {
    next.calmSinceMs = undefined;
    const cg = sample.cgroup;
    const emergency = cg !== undefined && cg.workingSetBytes > policy.emergencyWater * cg.limitBytes;
    const cooling = state.lastShrinkMs !== undefined && now - state.lastShrinkMs < policy.cooldownMs;
    if (state.cacheBytes === 0 || (cooling && !emergency)) return { state: next };
    // Halve, or give up at once what takes the working set back to the low-water mark if that
    // is more: the shrink lands only at the next token, while the squeeze goes on.
    const need = cg ? cg.workingSetBytes - policy.lowWater * cg.limitBytes : 0;
    const target = Math.max(0, Math.floor(Math.min(state.cacheBytes / 2, state.cacheBytes - need)));
    next.cacheBytes = target < policy.minStepBytes ? 0 : target;
    next.lastShrinkMs = now;
    return { state: next, change: { cacheBytes: next.cacheBytes, reason: `shrink: ${why}` } };
  }
  if (state.cacheBytes >= state.requestedBytes) return { state: { ...next, calmSinceMs: undefined } };
  if (state.calmSinceMs === undefined) return { state: { ...next, calmSinceMs: now } };
  if (now - state.calmSinceMs < policy.calmMs) return { state: next };
  // Calm for long enough: double, up to the budget's share and the cgroup's low-water mark.
  let grown = Math.min(state.requestedBytes, Math.max(2 * state.cacheBytes, policy.minStepBytes));
  const cg = sample.cgroup;
  if (cg) grown = Math.min(grown, state.cacheBytes + Math.max(0, Math.floor(policy.lowWater * cg.limitBytes - cg.workingSetBytes)));
  // Every resize drops the cached columns, so a gain below one step is not worth it (a
  // room-limited step can stop a few KiB short of the target).
  if (grown <= state.cacheBytes || (state.cacheBytes > 0 && grown - state.cacheBytes < policy.minStepBytes)) return { state: { ...next, calmSinceMs: now } };
  next.cacheBytes = grown;
  next.calmSinceMs = now; // each step waits for another calm period
  return { state: next, change: { cacheBytes: grown, reason: `grow: no pressure for ${((now - state.calmSinceMs) / 1000).toFixed(1)} s` } };
}

// ---- The watcher: polls readings on a timer and reports changes ----

export interface WatchMemoryOptions {
  // Milliseconds between readings. Defaults to 250.
  intervalMs?: number;
  policy?: Partial<PressurePolicy>;
  // Where readings come from. Defaults to this process's PSI file and cgroup.
  read?: () => PressureSample;
  // Each decision that changed the allowed cache size, as a line (the CLI prints them).
  log?: (line: string) => void;
}

export class MemoryPressureWatcher {
  private state: PressureState;
  private timer: NodeJS.Timeout | undefined;
  private readonly policy: PressurePolicy;
  private readonly read: () => PressureSample;

  constructor(
    requestedBytes: number,
    private readonly onChange: (cacheBytes: number, reason: string) => void,
    private readonly options: WatchMemoryOptions = {},
  ) {
    this.state = initialState(requestedBytes);
    this.policy = { ...DEFAULT_POLICY, ...options.policy };
    if (options.read) this.read = options.read;
    else {
      const sources = findPressureSources();
      if (!sources.psiFile && !sources.cgroup) {
        throw new ActiveflowError("BAD_ARGUMENT", "watchMemory: neither /proc/pressure/memory nor a cgroup memory limit can be read here");
      }
      this.read = () => readPressure(sources);
    }
  }

  get cacheBytes(): number {
    return this.state.cacheBytes;
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.poll(), this.options.intervalMs ?? 250);
    this.timer.unref(); // never keeps the process alive on its own
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  // One reading and decision (the timer calls this; tests may too).
  poll(): void {
    const d = decide(this.state, this.read(), this.policy);
    this.state = d.state;
    if (d.change) {
      this.options.log?.(`memory watcher: ${d.change.reason}; cache ${mb(d.change.cacheBytes)} of ${mb(this.state.requestedBytes)}`);
      this.onChange(d.change.cacheBytes, d.change.reason);
    }
  }

  retarget(requestedBytes: number): void {
    this.state = retarget(this.state, requestedBytes);
  }
}
