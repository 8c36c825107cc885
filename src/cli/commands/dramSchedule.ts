// `run --dram-schedule`: sets the DRAM budget at the listed generated-token indices, records
// per-phase speed and memory, and adds the schedule and phases to the output.
import type { GeneratedToken, GenerationStats, LoadOptions } from "../../engine/types.js";
import { fmt } from "../../memory/budget.js";
import { PhaseRecorder, entryAt, type DramScheduleEntry, type SchedulePhase } from "../../memory/schedule.js";
import type { OptionValues } from "../args.js";
import { jsonRecord, jsonText, statsLine, type GenerationResult } from "../output.js";
import type { CliContext, EngineLike } from "./context.js";

// The values run loads with: without --dram, the entry at token 0 is the load budget.
export function scheduleValues(values: OptionValues): { values: OptionValues; schedule: DramScheduleEntry[] | undefined } {
  const schedule = values.dramSchedule;
  if (schedule === undefined) return { values, schedule: undefined };
  return { values: values.dram === undefined ? { ...values, dram: schedule[0]!.budget } : values, schedule };
}

// Run-time changes resize only the cache, so the rest is planned for the lowest budget listed.
export function scheduleLoadOptions(options: LoadOptions, schedule: readonly DramScheduleEntry[]): void {
  options.dramFloor = [...(options.dram !== undefined ? [options.dram] : []), ...schedule.map((e) => e.budget)];
}

export class ScheduledRun {
  private readonly recorder = new PhaseRecorder();

  constructor(
    private readonly ctx: CliContext,
    private readonly engine: EngineLike,
    readonly schedule: readonly DramScheduleEntry[],
  ) {
    if (!engine.setDramBudget || !engine.flashStats) throw new Error("--dram-schedule needs an engine with setDramBudget");
  }

  // Wraps a generation: the entry at token T is set after token T-1 arrives, so it holds for
  // the pass that computes token T (the entry at 0 before the prompt is evaluated).
  async *wrap(gen: AsyncGenerator<GeneratedToken, GenerationStats, void>): AsyncGenerator<GeneratedToken, GenerationStats, void> {
    this.enter(0);
    for (let i = 0; ; i++) {
      const r = await gen.next();
      if (r.done === true) return r.value;
      if (r.value.id < 0) {
        // Text held back for a stop string, flushed at the end: not a token.
        yield r.value;
        i--;
        continue;
      }
      const resident = this.engine.flashStats!()?.weightResidentBytes ?? 0;
      if (i === 0) this.recorder.first(resident);
      else this.recorder.token(resident);
      yield r.value;
      this.enter(i + 1);
    }
  }

  private enter(token: number): void {
    const e = entryAt(this.schedule, token);
    // Without an entry at 0 the first phase runs under --dram.
    if (!e && token !== 0) return;
    const bytes = e ? this.engine.setDramBudget!(e.budget, `schedule ${e.token}:${e.budget.text}`) : this.engine.flashStats!()!.dramBudgetBytes;
    const label = e ? e.budget.text : "--dram";
    this.recorder.start(token, label, bytes, 0);
    this.ctx.stderr.write(`dram schedule: from token ${token}, budget ${label} (${fmt(bytes)})\n`);
  }

  // Phases with the cache each one ran with (from the engine's budget history).
  phases(stats: GenerationStats): SchedulePhase[] {
    const history = stats.flash?.budgetHistory ?? [];
    return this.recorder.phases.map((p) => {
      let cache = p.cacheBytes;
      for (const h of history) if (h.atToken === null || h.atToken <= p.fromToken) cache = h.cacheBytes;
      return { ...p, cacheBytes: cache };
    });
  }

  report(r: GenerationResult, json: boolean): void {
    const phases = this.phases(r.stats);
    if (json) {
      const record = {
        ...jsonRecord(r),
        dram_schedule: this.schedule.map((e) => ({ token: e.token, budget: e.budget.text })),
        phases: phases.map((p) => ({
          from_token: p.fromToken, budget: p.budget, budget_bytes: p.budgetBytes, cache_bytes: p.cacheBytes, tokens: p.tokens,
          seconds: p.seconds, tokens_per_s: p.tokensPerSecond, weight_resident_peak_bytes: p.weightResidentPeakBytes,
          rss_peak_bytes: p.rssPeakBytes, rss_end_bytes: p.rssEndBytes,
        })),
      };
      this.ctx.stdout.write(`${jsonText(record)}\n`);
    } else {
      this.ctx.stdout.write("\n");
    }
    this.ctx.stderr.write(`${statsLine(r)}\n`);
    for (const p of phases) {
      this.ctx.stderr.write(
        `phase from token ${p.fromToken} (${p.budget}, ${fmt(p.budgetBytes)}, cache ${fmt(p.cacheBytes)}): ${p.tokens} tokens, ` +
          `${p.tokensPerSecond.toFixed(1)} tok/s, weights held ${fmt(p.weightResidentPeakBytes)}, RSS peak ${fmt(p.rssPeakBytes)}\n`,
      );
    }
  }
}
