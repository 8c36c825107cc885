// What the CLI prints after a generation: a human stats line (stderr) and the --json record
// (stdout). Field names in the JSON are snake_case and stable: scripts and benchmarks read them.
import type { GenerationStats } from "../engine/types.js";

export interface GenerationResult {
  tokens: number[]; // generated ids only
  text: string; // generated text only
  stats: GenerationStats;
  seed: number | undefined; // undefined when greedy (no randomness used)
}

const MB = 1024 * 1024;

function fixed(x: number, digits: number): string {
  return Number.isFinite(x) ? x.toFixed(digits) : "n/a";
}

export function statsLine(r: GenerationResult): string {
  const s = r.stats;
  const parts = [
    `${s.promptTokens} prompt + ${s.generatedTokens} generated tokens`,
    `prefill ${fixed(s.prefillTokensPerSecond, 1)} tok/s`,
    `decode ${fixed(s.decodeTokensPerSecond, 1)} tok/s`,
    `peak RSS ${fixed(s.peakRssBytes / MB, 1)} MB`,
    `${s.isa}, ${s.threads} thread${s.threads === 1 ? "" : "s"}`,
    `stop: ${s.stopReason}`,
  ];
  if (r.seed !== undefined) parts.push(`seed ${r.seed}`);
  return `stats: ${parts.join(" | ")}`;
}

export function jsonRecord(r: GenerationResult): Record<string, unknown> {
  const s = r.stats;
  return {
    text: r.text,
    tokens: r.tokens,
    prompt_tokens: s.promptTokens,
    generated_tokens: s.generatedTokens,
    prefill_s: s.prefillSeconds,
    decode_s: s.decodeSeconds,
    prefill_tokens_per_s: s.prefillTokensPerSecond,
    decode_tokens_per_s: s.decodeTokensPerSecond,
    peak_rss_bytes: s.peakRssBytes,
    model_bytes: s.modelBytes,
    isa: s.isa,
    threads: s.threads,
    stop_reason: s.stopReason,
    seed: r.seed ?? null,
  };
}

// One line, so it can be the last line of stdout.
export function jsonLine(r: GenerationResult): string {
  return JSON.stringify(jsonRecord(r));
}
