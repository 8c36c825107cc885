// Overall progress and time left of a calibration. Its stages are of three kinds whose cost
// per token differs a lot: decoding the self-generated text (one token per pass), teacher-forced
// passes over that text (batched), and sensitivity probes (passes plus a softmax over the
// vocabulary per token). Each kind's seconds per token is measured as it runs; a kind not
// started yet borrows the nearest measured one, so the estimate sharpens after each stage.

export type StageKind = "decode" | "pass" | "probe";

export interface StagePlan {
  name: string;
  kind: StageKind;
  // Tokens the stage evaluates (decoded, or evaluated in passes).
  tokens: number;
}

export interface OverallProgress {
  fraction: number;
  // Seconds left, when any stage has been timed.
  etaSeconds: number | undefined;
}

// Before any pass is timed: a batched pass evaluates a token at about this fraction of a decode
// step's cost (a batch shares each weight read); corrected as soon as a pass has run.
const PASS_PER_DECODE = 1 / 8;

export class CalibrationProgress {
  private readonly done: number[];
  // Seconds and tokens of finished stages, by kind, and of the stage running now.
  private readonly closed = new Map<StageKind, { seconds: number; tokens: number }>();
  private live: { kind: StageKind; seconds: number; tokens: number } | undefined;
  private current = -1;
  private stageStart: number;
  private lastUpdate: number;

  constructor(readonly stages: readonly StagePlan[], private readonly now: () => number = () => performance.now() / 1000) {
    this.done = stages.map(() => 0);
    this.stageStart = this.lastUpdate = now();
  }

  // Stage `name` has evaluated `fraction` of its tokens. A new stage began when the previous
  // update came in (progress is reported after each unit of work).
  update(name: string, fraction: number): OverallProgress {
    const i = this.stages.findIndex((s) => s.name === name);
    if (i < 0) return this.overall();
    const t = this.now();
    if (i !== this.current) {
      if (this.live) {
        const c = this.closed.get(this.live.kind) ?? { seconds: 0, tokens: 0 };
        this.closed.set(this.live.kind, { seconds: c.seconds + this.live.seconds, tokens: c.tokens + this.live.tokens });
      }
      for (let j = 0; j < i; j++) this.done[j] = this.stages[j]!.tokens;
      this.current = i;
      this.stageStart = this.lastUpdate;
    }
    this.lastUpdate = t;
    const stage = this.stages[i]!;
    this.done[i] = Math.min(stage.tokens, Math.max(0, fraction) * stage.tokens);
    this.live = { kind: stage.kind, seconds: t - this.stageStart, tokens: this.done[i]! };
    return this.overall();
  }

  private measured(kind: StageKind): number | undefined {
    const c = this.closed.get(kind) ?? { seconds: 0, tokens: 0 };
    const l = this.live?.kind === kind ? this.live : { seconds: 0, tokens: 0 };
    const tokens = c.tokens + l.tokens;
    return tokens > 0 ? (c.seconds + l.seconds) / tokens : undefined;
  }

  // Seconds per token of a kind: measured, else borrowed from a measured kind.
  private rate(kind: StageKind): number | undefined {
    const own = this.measured(kind);
    if (own !== undefined) return own;
    const pass = this.measured("pass");
    const decode = this.measured("decode");
    if (kind === "probe") return pass ?? (decode !== undefined ? decode * PASS_PER_DECODE : undefined);
    if (kind === "pass") return decode !== undefined ? decode * PASS_PER_DECODE : undefined;
    return pass !== undefined ? pass / PASS_PER_DECODE : undefined;
  }

  overall(): OverallProgress {
    let total = 0, left = 0, known = true;
    let tokensTotal = 0, tokensDone = 0;
    for (const [i, s] of this.stages.entries()) {
      tokensTotal += s.tokens;
      tokensDone += this.done[i]!;
      const r = this.rate(s.kind);
      if (r === undefined) {
        known = false;
        continue;
      }
      total += s.tokens * r;
      left += (s.tokens - this.done[i]!) * r;
    }
    if (!known || total <= 0) return { fraction: tokensTotal > 0 ? tokensDone / tokensTotal : 0, etaSeconds: undefined };
    return { fraction: 1 - left / total, etaSeconds: left };
  }
}

export function formatEta(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
}
