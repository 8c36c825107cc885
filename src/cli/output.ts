// What the CLI prints after a generation: a human stats line (stderr) and the --json record
// (stdout). Field names in the JSON are snake_case and stable: scripts and benchmarks read them.
import type { ExpertRunStats, FlashRunStats, GenerationStats, PreloadRunStats } from "../engine/types.js";

export interface GenerationResult {
  tokens: number[]; // generated ids only
  text: string; // generated text only
  stats: GenerationStats;
  seed: number | undefined; // undefined when greedy (no randomness used)
}

const MiB = 1024 * 1024;

// Layout version of every --json record the CLI prints (its `schema` field): bumped when a
// key is renamed or removed or changes meaning, not when one is added.
// 2: run and chat's peak_rss_bytes and convert's are now rss_peak_bytes (as --dram-schedule's
// phases name it); run and chat added runtime_floor_bytes and model_memory_peak_bytes.
export const JSON_SCHEMA = 2;

// One JSON line with the schema version first.
export function jsonText(record: Record<string, unknown>): string {
  return JSON.stringify({ schema: JSON_SCHEMA, ...record });
}

function fixed(x: number, digits: number): string {
  return Number.isFinite(x) ? x.toFixed(digits) : "n/a";
}

export function statsLine(r: GenerationResult): string {
  const s = r.stats;
  const parts = [
    `${s.promptTokens} prompt + ${s.generatedTokens} generated tokens`,
    s.reusedTokens > 0
      ? `prefill ${s.prefillTokens} new tokens (${s.reusedTokens} reused from the cache) at ${fixed(s.prefillTokensPerSecond, 1)} tok/s`
      : `prefill ${fixed(s.prefillTokensPerSecond, 1)} tok/s`,
    `decode ${fixed(s.decodeTokensPerSecond, 1)} tok/s`,
    `peak RSS ${fixed(s.peakRssBytes / MiB, 1)} MiB`,
    `${s.isa}, ${s.threads} thread${s.threads === 1 ? "" : "s"}`,
    `stop: ${s.stopReason}`,
  ];
  if (r.seed !== undefined) parts.push(`seed ${r.seed}`);
  if (s.contextShift) parts.push(`context full: dropped the ${s.contextShift.droppedMessages} oldest messages (${s.contextShift.droppedTokens} tokens)`);
  const lines = [`stats: ${parts.join(" | ")}`];
  const memory = memoryLine(s);
  if (memory !== undefined) lines.push(memory);
  if (s.flash) lines.push(flashLine(s.flash));
  return lines.join("\n");
}

// The peak split into the runtime floor (Node and the addon before the model was opened,
// outside any budget) and the model's memory above it, set against the budget when there is
// one; undefined when the engine did not measure the floor.
export function memoryLine(s: GenerationStats): string | undefined {
  if (s.runtimeFloorBytes === undefined || s.runtimeFloorBytes <= 0) return undefined;
  const m = (b: number) => `${fixed(b / MiB, 1)} MiB`;
  const model = modelMemoryBytes(s.peakRssBytes, s.runtimeFloorBytes);
  const budget = s.flash?.dramBudgetBytes;
  const floor = `runtime floor ${m(s.runtimeFloorBytes)} (Node and the addon, before the model was opened)`;
  const head = budget === undefined
    ? `model ${m(model)}; ${floor}`
    : `model ${m(model)} ${model <= budget ? "within" : `over by ${m(model - budget)},`} budget ${m(budget)}; ${floor} outside it`;
  return `memory: ${head}; peak RSS ${m(s.peakRssBytes)}`;
}

// The model's part of a peak RSS: what the process held above its runtime floor.
export function modelMemoryBytes(rssPeakBytes: number, runtimeFloorBytes: number): number {
  return Math.max(0, rssPeakBytes - runtimeFloorBytes);
}

// The second stats line in flash mode: what the budget held and what was read.
export function flashLine(f: FlashRunStats): string {
  const a = f.activeFraction;
  const parts = [
    `budget ${fixed(f.dramBudgetBytes / MiB, 1)} MiB (weights peak ${fixed(f.weightResidentBytesPeak / MiB, 1)}, cache ${fixed(f.cacheBytes / MiB, 1)}, KV ${fixed(f.kvBytes / MiB, 2)}, ` +
      `${f.engineBytes !== undefined ? `engine ${fixed(f.engineBytes / MiB, 1)}, ` : ""}head ${f.headResident ? "resident" : "streamed"})`,
    `sparsity ${f.sparsity}`,
    `read ${fixed(f.flashBytesRead / MiB, 1)} MiB in ${f.flashReads} reads (mean ${fixed(f.meanReadBytes / 1024, 1)} KiB)`,
    `cache hits ${fixed(f.cacheHitRate * 100, 1)}%`,
    `active q/k/v ${fixed(a.q, 2)} o ${fixed(a.o, 2)} gate/up ${fixed(a.gate, 2)} down ${fixed(a.down, 2)}`,
    `I/O wait ${fixed(f.ioWaitSeconds, 2)} s, column compute ${fixed(f.computeSeconds, 2)} s`,
  ];
  if (f.tuning) parts.unshift(`tuned: ${f.tuning.reason}, predicted ${fixed(f.tuning.predictedTokensPerSecond, 2)} tok/s`);
  const p = f.preload;
  if (p?.enabled) {
    parts.push(
      `preload ${fixed(p.bufferBytes / MiB, 1)} MiB: active bytes ${fixed(p.activeFromCache * 100, 0)}% cache / ${fixed(p.activeFromPreload * 100, 0)}% preload / ${fixed(p.activeOnDemand * 100, 0)}% on demand, overlap ${fixed(p.overlap * 100, 0)}%`,
    );
  }
  const x = f.experts;
  if (x) {
    parts.push(
      `experts: ${x.expertsRead} read + ${x.expertsPrefetched} pre-gated (${fixed(x.expertBytesRead / MiB, 1)} MiB), hits ${fixed(x.cacheHitRate * 100, 1)}% of ${x.lookups} in ${x.slots} slots, ` +
        `pre-gating recall ${x.pregating.recall === null ? "-" : `${fixed(x.pregating.recall * 100, 1)}%`}` +
        (x.pregating.off !== null ? `, pre-gating off (${x.pregating.off})` : ""),
    );
  }
  return `flash: ${parts.join(" | ")}`;
}

// Flash-mode fields of the --json record (snake_case, stable).
export function flashRecord(f: FlashRunStats): Record<string, unknown> {
  return {
    dram_budget_bytes: f.dramBudgetBytes,
    weight_resident_bytes_peak: f.weightResidentBytesPeak,
    flash_bytes_read: f.flashBytesRead,
    flash_reads: f.flashReads,
    mean_read_bytes: f.meanReadBytes,
    cache_hit_rate: f.cacheHitRate,
    cache_hit_rate_by_site: { ...f.cacheHitRateBySite },
    planner: {
      merge: f.planner.merge, read_gap_bytes: f.planner.readGapBytes, cache_policy: f.planner.cachePolicy, cache_split: f.planner.cacheSplit,
      predicted_tokens_per_s: f.planner.predictedTokensPerSecond,
    },
    active_fraction: { ...f.activeFraction },
    io_wait_s: f.ioWaitSeconds,
    compute_s: f.computeSeconds,
    sparsity: f.sparsity,
    kv_bytes: f.kvBytes,
    scratch_bytes: f.scratchBytes,
    cache_bytes: f.cacheBytes,
    ...(f.engineBytes !== undefined ? { engine_bytes: f.engineBytes } : {}),
    head_resident: f.headResident,
    ...(f.budgetHistory && f.budgetHistory.length > 1 ? { budget_history: f.budgetHistory.map((h) => ({ at_token: h.atToken, budget_bytes: h.budgetBytes, cache_bytes: h.cacheBytes, source: h.source, ...(h.reason !== undefined ? { reason: h.reason } : {}) })) } : {}),
    ...(f.preload ? { preload: preloadRecord(f.preload) } : {}),
    ...(f.experts ? { experts: expertsRecord(f.experts) } : {}),
    ...(f.tuning
      ? {
          tuning: {
            sparsity: f.tuning.sparsity, group_size: f.tuning.groupSize, recommended_group_size: f.tuning.recommendedGroupSize,
            cache_bytes: f.tuning.cacheBytes, preload_bytes: f.tuning.preloadBytes,
            predicted_tokens_per_s: f.tuning.predictedTokensPerSecond, predicted_bytes_per_token: f.tuning.predictedBytesPerToken,
            ...tuningQuality(f.tuning),
            reason: f.tuning.reason,
          },
        }
      : {}),
  };
}

function expertsRecord(x: ExpertRunStats): Record<string, unknown> {
  const p = x.pregating;
  return {
    lookups: x.lookups,
    experts_read: x.expertsRead,
    experts_prefetched: x.expertsPrefetched,
    expert_bytes_read: x.expertBytesRead,
    expert_cache_hit_rate: x.cacheHitRate,
    expert_prefetch_hit_rate: x.prefetchHitRate,
    pregating: { reads_ahead: p.readsAhead, off: p.off, distance: p.distance, tp: p.truePositives, fp: p.falsePositives, fn: p.falseNegatives, precision: p.precision, recall: p.recall },
    slots: x.slots,
    slot_bytes: x.slotBytes,
    cached_experts: x.cachedExperts,
    io_wait_s: x.ioWaitSeconds,
    compute_s: x.computeSeconds,
  };
}

// The chosen level's quality as calibrate measured it (null: the table predates those numbers)
// and the floor asked for (null: none); eval --sparsity auto reports the same fields.
export function tuningQuality(t: { predictedKl?: number; predictedTop1?: number; floor?: { maxKl?: number; minTop1?: number } }): Record<string, number | null> {
  return {
    predicted_kl: t.predictedKl ?? null,
    predicted_top1: t.predictedTop1 ?? null,
    max_kl: t.floor?.maxKl ?? null,
    min_top1: t.floor?.minTop1 ?? null,
  };
}

function preloadRecord(p: PreloadRunStats): Record<string, unknown> {
  return {
    enabled: p.enabled,
    group_size: p.groupSize,
    buffer_bytes: p.bufferBytes,
    preload_bytes_read: p.preloadBytesRead,
    demand_bytes_read: p.demandBytesRead,
    reads_withdrawn: p.readsWithdrawn,
    active_from_cache: p.activeFromCache,
    active_from_preload: p.activeFromPreload,
    active_on_demand: p.activeOnDemand,
    preload_io_s: p.preloadIoSeconds,
    preload_wait_s: p.preloadWaitSeconds,
    demand_wait_s: p.demandWaitSeconds,
    overlap: p.overlap,
    prediction: p.prediction,
    prediction_from_layer3: p.predictionFromLayer3,
  };
}

export function jsonRecord(r: GenerationResult): Record<string, unknown> {
  const s = r.stats;
  return {
    text: r.text,
    tokens: r.tokens,
    prompt_tokens: s.promptTokens,
    prefill_tokens: s.prefillTokens,
    reused_tokens: s.reusedTokens,
    generated_tokens: s.generatedTokens,
    prefill_s: s.prefillSeconds,
    decode_s: s.decodeSeconds,
    prefill_tokens_per_s: s.prefillTokensPerSecond,
    decode_tokens_per_s: s.decodeTokensPerSecond,
    rss_peak_bytes: s.peakRssBytes,
    ...(s.runtimeFloorBytes !== undefined && s.runtimeFloorBytes > 0
      ? { runtime_floor_bytes: s.runtimeFloorBytes, model_memory_peak_bytes: modelMemoryBytes(s.peakRssBytes, s.runtimeFloorBytes) }
      : {}),
    model_bytes: s.modelBytes,
    isa: s.isa,
    threads: s.threads,
    stop_reason: s.stopReason,
    seed: r.seed ?? null,
    ...(s.contextShift ? { context_shift: { dropped_messages: s.contextShift.droppedMessages, dropped_tokens: s.contextShift.droppedTokens } } : {}),
    ...(s.flash ? flashRecord(s.flash) : {}),
  };
}

// One line, so it can be the last line of stdout.
export function jsonLine(r: GenerationResult): string {
  return jsonText(jsonRecord(r));
}
