// Scripted DRAM budget changes for demos and tests: `--dram-schedule "0:60%,32:20%,64:60%"`
// sets the budget at those generated-token indices (the entry at T is in force for tokens
// T, T+1, ... until the next entry), and per-phase numbers of such a run.
import { readFileSync } from "node:fs";
import { ActiveflowError } from "../errors.js";
import { parseBudget, type Budget } from "./budget.js";

export interface DramScheduleEntry {
  // Index of the first generated token computed under this budget (0 = the prompt's pass).
  token: number;
  // As --dram takes it (bytes, "512MB", "35%" of the model file given), parsed; budget.text
  // is the entry as written.
  budget: Budget;
}

// Parses "TOKEN:BUDGET,..."; tokens strictly increasing. Errors name the bad entry.
export function parseDramSchedule(text: string): DramScheduleEntry[] {
  const bad = (why: string) => new ActiveflowError("BAD_ARGUMENT", `--dram-schedule "${text}": ${why}`);
  const raw = text.split(",").map((s) => s.trim());
  if (raw.length === 1 && raw[0] === "") throw bad("is empty; expected TOKEN:BUDGET entries such as 0:60%,32:20%");
  const out: DramScheduleEntry[] = [];
  raw.forEach((entry, i) => {
    const where = `entry ${i + 1} "${entry}"`;
    const colon = entry.indexOf(":");
    if (colon < 0) throw bad(`${where} has no ":"; expected TOKEN:BUDGET such as 32:20%`);
    const tok = entry.slice(0, colon).trim(), budget = entry.slice(colon + 1).trim();
    if (!/^\d+$/.test(tok) || !Number.isSafeInteger(Number(tok))) throw bad(`${where}: the token index "${tok}" is not a non-negative integer`);
    let parsed: Budget;
    try {
      parsed = parseBudget(budget);
    } catch {
      throw bad(`${where}: the budget "${budget}" is not bytes, a size such as 512MB or a percentage such as 35%`);
    }
    const token = Number(tok);
    const prev = out[out.length - 1];
    if (prev && token <= prev.token) throw bad(`${where}: token ${token} does not come after the previous entry's ${prev.token}`);
    out.push({ token, budget: parsed });
  });
  return out;
}

// The entry that starts at exactly `token`, if any.
export function entryAt(schedule: readonly DramScheduleEntry[], token: number): DramScheduleEntry | undefined {
  return schedule.find((e) => e.token === token);
}

export function residentSetBytes(): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync("/proc/self/status", "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0; // not Linux: the phase record then has no RSS
  }
}

export interface SchedulePhase {
  fromToken: number;
  budget: string;
  budgetBytes: number;
  cacheBytes: number;
  tokens: number;
  seconds: number;
  // Tokens of the phase per second; the phase's first token is counted from the previous
  // token's arrival (so the first phase excludes the prompt pass).
  tokensPerSecond: number;
  // Highest weight bytes the engine held (resident tensors, staging, cache) and VmRSS,
  // sampled at each token of the phase.
  weightResidentPeakBytes: number;
  rssPeakBytes: number;
  rssEndBytes: number;
}

// Per-phase numbers of a scheduled run, fed once per generated token.
export class PhaseRecorder {
  readonly phases: SchedulePhase[] = [];
  private last = 0;

  // Call before the token at `token` is computed when a new phase starts there.
  start(fromToken: number, budget: string, budgetBytes: number, cacheBytes: number): void {
    this.phases.push({ fromToken, budget, budgetBytes, cacheBytes, tokens: 0, seconds: 0, tokensPerSecond: 0, weightResidentPeakBytes: 0, rssPeakBytes: 0, rssEndBytes: 0 });
  }

  // The generation's first token arrived (its time is the prompt pass, not counted).
  first(weightResidentBytes: number): void {
    this.last = performance.now();
    this.sample(weightResidentBytes, false);
  }

  token(weightResidentBytes: number): void {
    const now = performance.now();
    const p = this.phases[this.phases.length - 1];
    if (p) p.seconds += (now - this.last) / 1000;
    this.last = now;
    this.sample(weightResidentBytes, true);
  }

  private sample(weightResidentBytes: number, counted: boolean): void {
    const p = this.phases[this.phases.length - 1];
    if (!p) return;
    const rss = residentSetBytes();
    if (counted) p.tokens++;
    p.tokensPerSecond = p.seconds > 0 ? p.tokens / p.seconds : 0;
    p.weightResidentPeakBytes = Math.max(p.weightResidentPeakBytes, weightResidentBytes);
    p.rssPeakBytes = Math.max(p.rssPeakBytes, rss);
    p.rssEndBytes = rss;
  }
}
