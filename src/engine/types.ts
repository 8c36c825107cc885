import type { Budget } from "../memory/budget.js";
import type { WatchMemoryOptions } from "../memory/pressure.js";
import type { JsonSchema } from "../structured/schema.js";
import type { ChatMessage, Tokenizer } from "../tokenizer/types.js";

export interface SamplingOptions {
  // 0 or greedy=true picks the argmax. Defaults to 0.8.
  temperature?: number;
  greedy?: boolean;
  // Keep the k most likely tokens; 0 disables. Defaults to 40.
  topK?: number;
  // Nucleus sampling mass; 1 disables. Defaults to 0.95.
  topP?: number;
  // Drop tokens below minP * p(max); 0 disables. Defaults to 0.05.
  minP?: number;
  // Penalise tokens seen in the last repeatLastN tokens; 1 disables. Defaults to 1.
  repeatPenalty?: number;
  // Defaults to 64.
  repeatLastN?: number;
  // Same seed, same tokens. Defaults to a random seed.
  seed?: number;
}

export interface GenerateOptions extends SamplingOptions {
  // Tokens to generate at most. Defaults to 128.
  maxTokens?: number;
  signal?: AbortSignal;
  // Stop at the model's end-of-generation tokens. Defaults to true.
  stopAtEos?: boolean;
  // Prepend BOS when the model asks for it. Defaults to true for generate(), as llama.cpp.
  addSpecial?: boolean;
  // End the generation where the text contains one of these strings (matched across token
  // boundaries); the stop string is not in the text handed out. Text that may begin a stop
  // string is held back until a later token settles it; if the generation then ends for
  // another reason, a last item with id -1 carries it. Defaults to none.
  stop?: readonly string[];
  // chat(): when the conversation and the reply's room (min(maxTokens, half the context)) do
  // not fit the context, drop the oldest whole turns after the system message(s) and prefill
  // the rest again; false throws CONTEXT_FULL instead. Defaults to true.
  contextShift?: boolean;
  // Report each generated token's log-probability and the n most likely alternatives (0 to 20)
  // under the model's raw distribution (temperature 1, before sampling options and before a schema's
  // mask), as OpenAI's logprobs. Defaults to none.
  logprobs?: number;
  // Constrain the text to one JSON value: a JSON Schema (the supported subset is in
  // docs/STRUCTURED_OUTPUT.md; anything else throws BAD_SCHEMA), or "json" for any JSON
  // object (OpenAI's json_object). An end-of-generation token is allowed only once the value
  // is complete, and the generation ends there (stopReason "eos", whatever stopAtEos says).
  // As maxTokens or the context runs short, only tokens that still let the value close in time
  // are allowed; a budget below the shortest valid value ends it unfinished ("length").
  // Defaults to none.
  schema?: JsonSchema | "json";
}

export interface GeneratedToken {
  id: number;
  // Text this token completes (may be "" while a UTF-8 sequence is incomplete or text is
  // held back for a possible stop string). id is -1 only on the item that flushes held text.
  text: string;
  // With GenerateOptions.logprobs: ln p(id), and the most likely tokens, best first.
  logprob?: number;
  topLogprobs?: { id: number; logprob: number }[];
}

export interface GenerationStats {
  promptTokens: number;
  // Prompt tokens evaluated by this generation's prefill, and those whose keys and values the
  // KV cache already held from the previous generation (prompt prefix reuse).
  prefillTokens: number;
  reusedTokens: number;
  generatedTokens: number;
  prefillSeconds: number;
  decodeSeconds: number;
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
  // Peak RSS of the process so far, and its RSS before the first model was opened (Node and
  // the addon; the engine measures it once per process): the difference is the model's memory.
  // Optional so that stand-in engines (tests) may leave the floor out.
  peakRssBytes: number;
  runtimeFloorBytes?: number;
  modelBytes: number;
  threads: number;
  isa: string;
  // prefillTokensPerSecond counts prefillTokens (the evaluated ones) only.
  // "stop": a stop string (GenerateOptions.stop) appeared.
  stopReason: "eos" | "length" | "aborted" | "context" | "stop";
  // With GenerateOptions.schema: time spent masking logits and following tokens, and the
  // masks computed (the rest came from the grammar's cache).
  structured?: { maskSeconds: number; masksComputed: number };
  // chat(): the oldest turns dropped to fit the context (context shift), when any were.
  contextShift?: { droppedMessages: number; droppedTokens: number };
  // Present when the model runs from the flash layout under a DRAM budget.
  flash?: FlashRunStats;
}

export interface FlashRunStats {
  dramBudgetBytes: number;
  weightResidentBytesPeak: number;
  // Weight bytes held now (resident tensors, staging, preload buffers, cache); 0 if unknown.
  weightResidentBytes?: number;
  kvBytes: number;
  scratchBytes: number;
  cacheBytes: number;
  // The engine's own memory the budget charges besides the native buffers (tokenizer, headers,
  // JS heap, the addon's bookkeeping: memory/budget.ts engineBytes); absent in older stats.
  engineBytes?: number;
  headResident: boolean;
  sparsity: number;
  flashBytesRead: number;
  flashReads: number;
  meanReadBytes: number;
  cacheHitRate: number;
  // Active channels found in the hot cache, per site (null where nothing was looked up).
  cacheHitRateBySite: { attn_in: number | null; attn_out: number | null; ffn_in: number | null; ffn_out: number | null };
  // How misses are read and the cache is kept, and what that was predicted to give.
  planner: PlannerStats;
  // Kept / seen input elements per site: attn_in (q, k, v), attn_out (o), ffn_in (gate, up), ffn_out (down).
  activeFraction: { q: number; k: number; v: number; o: number; gate: number; up: number; down: number };
  ioWaitSeconds: number;
  computeSeconds: number;
  // The preloading pipeline (absent from stats made before it existed).
  preload?: PreloadRunStats;
  // What the tuner chose with sparsity "auto".
  tuning?: TuningStats;
  // The budget in force when the generation started, then each change applied during it.
  budgetHistory?: BudgetChange[];
  // Mixture-of-experts models: the experts' reads, cache and pre-gating.
  experts?: ExpertRunStats;
}

export interface ExpertRunStats {
  // (layer, expert) uses the routers asked for (the shared expert's included).
  lookups: number;
  // Whole experts read on demand, and read ahead by pre-gating; the bytes of both.
  expertsRead: number;
  expertsPrefetched: number;
  expertBytesRead: number;
  // Uses found resident (cached, or read or being read by pre-gating), and by pre-gating alone.
  cacheHitRate: number;
  prefetchHitRate: number;
  // The next layer's router applied to the residual stream before this layer's FFN, against
  // the experts that layer then routed to, per token (the shared expert not counted). Both
  // sets hold top-k experts, so precision and recall are equal.
  // readsAhead: whether pre-gating reads experts ahead; when not, off says why ("not
  // requested", or "lack of slots: ..." when the budget holds fewer than twice the slots a layer
  // pins). Prediction is scored whenever it was requested.
  pregating: { readsAhead: boolean; off: string | null; distance: 1; truePositives: number; falsePositives: number; falseNegatives: number; precision: number | null; recall: number | null };
  // Slots of whole experts (the budget's), each slotBytes; experts held in them now.
  slots: number;
  slotBytes: number;
  cachedExperts: number;
  ioWaitSeconds: number;
  computeSeconds: number;
}

export interface PlannerStats {
  // "cost" (reads merged when one read costs the device less than two, by its measured curve)
  // or "gap" (merged across gaps of at most readGapBytes).
  merge: "cost" | "gap";
  readGapBytes: number | null;
  cachePolicy: CachePolicy;
  // "read-cost": extents whose misses cost the device most per byte are cached first.
  cacheSplit: "read-cost" | "proportional";
  // The tuner's cost model for this budget and sparsity (src/pipeline/tuner.ts).
  predictedTokensPerSecond: number;
}

// One run-time budget or cache change (setDramBudget, a schedule, the memory watcher).
export interface BudgetChange {
  // Index of the first generated token computed under it; null when applied between generations.
  atToken: number | null;
  budgetBytes: number;
  cacheBytes: number;
  source: "load" | "api" | "pressure";
  reason?: string;
}

export interface TuningStats {
  sparsity: number;
  groupSize: number; // the file's
  recommendedGroupSize: number; // the cost model's best of 1/2/4/8 (convert with it)
  cacheBytes: number;
  preloadBytes: number;
  predictedTokensPerSecond: number;
  predictedBytesPerToken: number;
  reason: string;
  // The chosen level's KL and top-1 as calibrate measured them on its text (absent when the
  // table predates those numbers), and the floor asked for (absent: none).
  predictedKl?: number;
  predictedTop1?: number;
  floor?: { maxKl?: number; minTop1?: number };
}

export interface PreloadRunStats {
  enabled: boolean;
  // The buffers read every uncached record of the next site (no prediction), not predictions.
  readAhead: boolean;
  groupSize: number; // layers per group (the preload unit)
  bufferBytes: number; // both preload buffers
  preloadBytesRead: number;
  demandBytesRead: number;
  // Prefetch / read-ahead reads still unissued when their visit came, dropped there: the
  // visit read its active records among them on demand instead.
  readsWithdrawn: number;
  // Shares of the active channels' record bytes by where compute found them.
  activeFromCache: number;
  activeFromPreload: number;
  activeOnDemand: number;
  preloadIoSeconds: number; // loader time of preload batches
  preloadWaitSeconds: number; // compute blocked on a preload
  demandWaitSeconds: number; // compute blocked on on-demand reads
  overlap: number; // share of preload I/O time hidden behind compute
  // Per site: precision and recall of the predicted active set by layer distance (attn_in,
  // ffn_in: from the residual d layers earlier; attn_out, ffn_out: d = 1 is the previous token).
  prediction: Partial<Record<string, { distance: number; precision: number | null; recall: number | null }[]>>;
  // The same from layer 3 on (the paper: the residual stream dominates from layer ~3).
  predictionFromLayer3: Partial<Record<string, { distance: number; precision: number | null; recall: number | null }[]>>;
}

export const CACHE_POLICIES = ["lfu", "prefix", "static"] as const;
export type CachePolicy = (typeof CACHE_POLICIES)[number];
export const CACHE_POLICY_DEFAULT: CachePolicy = "lfu";
// Compute threads when swapping under a budget: the loader thread and the device's completions
// need a core, and one compute thread measured faster than two there (bench/results/swap-*).
export const SWAP_THREADS_DEFAULT = 1;

// Chooses the context length once the model's header is read (LoadOptions.contextLength).
export type ContextSizer = (tokenizer: Tokenizer, trainedContext: number) => number;

export interface LoadOptions {
  // Compute threads. Defaults to the count measured fastest on this machine (src/engine/threads.ts,
  // once, cached in the machine profile).
  threads?: number;
  // KV cache length in tokens, or a function of the model's tokenizer and trained context that
  // returns it (sizing the context to a prompt without reading the vocabulary twice).
  // Defaults to min(2048, the model's trained context).
  contextLength?: number | ContextSizer;
  signal?: AbortSignal;
  onProgress?: (fraction: number) => void;
  // DRAM budget: bytes, "512MB", "2GB" or a percentage of the model file given to load ("35%"),
  // or a Budget parseBudget returned (parsed once, e.g. by the CLI). Setting it runs the model
  // from the flash layout (a GGUF is converted once into the cache). Defaults to no budget: a
  // GGUF runs dense, fully in DRAM.
  dram?: string | number | Budget;
  // Contextual sparsity in [0, 1): the fraction of each linear layer's inputs skipped, using
  // the model's calibration table. Defaults to 0 (dense).
  // "auto" (needs `dram`): the tuner (src/pipeline/tuner.ts) picks the level from the budget
  // and this machine's measured flash and compute speeds (profiled once, cached).
  sparsity?: number | "auto";
  // With sparsity "auto": the highest level the tuner may pick. Defaults to 0.5
  // (AUTO_MAX_SPARSITY) without a quality floor, to no cap with one.
  maxSparsity?: number;
  // With sparsity "auto", a quality floor: the tuner picks no level whose KL(dense || sparse)
  // per token, or top-1 agreement with the dense model, as calibrate measured them on its own
  // text, is past these (src/sparsity/qualityFloor.ts). Needs a table made with those numbers.
  // Defaults to no floor.
  maxKl?: number;
  minTop1?: number;
  // Layers per group of the flash layout when converting. Defaults to 1.
  groupSize?: number;
  // Keep a low-bit source type for the columns when converting (see ConvertOptions): for
  // speed work on random weights, where quality does not count. Defaults to false.
  keepSourceType?: boolean;
  // Check every page read from flash against its CRC-32C. Defaults to false.
  verifyReads?: boolean;
  // Read the predicted channels of the next layer group while this one computes. Defaults
  // to false: every miss loads on demand, which measured faster on our 2-core SSD machine
  // (see PRELOAD_DEFAULT in Engine.ts); a machine whose compute outweighs its flash time gains.
  preload?: boolean;
  // With groups of one layer: read every uncached record of the next site while this one
  // computes, without predicting which are active. Defaults to false.
  readAhead?: boolean;
  // Mixture-of-experts models under a budget: apply the next layer's router to the residual
  // stream and read its experts while this layer computes (pre-gating). Defaults to true.
  pregate?: boolean;
  // A channel is predicted active when its predicted |x| exceeds margin x its threshold.
  // Below 1 trades bytes for recall. Defaults to 1.
  predictMargin?: number;
  // Which records the hot cache keeps: "lfu" (frequency counts per sequence; misses replace
  // colder channels), "prefix" (the first records of every extent in file order, read in one
  // span, so the misses form one contiguous run) or "static" (the records of highest
  // calibrated frequency x read price across extents, pinned at the first visit; needs a file
  // that `activeflow reorder` wrote). Defaults to CACHE_POLICY_DEFAULT.
  cachePolicy?: CachePolicy;
  // Merge on-demand reads across gaps of at most this many bytes (-1: never) instead of by the
  // device's measured read-cost curve; for benchmarks comparing read strategies. Defaults to
  // the curve (measured once per machine and device, see src/pipeline/profile.ts).
  readGap?: number;
  // The lowest budget setDramBudget will be given (or several: the lowest counts): the parts
  // a run-time change cannot resize (the head's residency, preload buffers) are planned for
  // it, the cache for `dram`. Same forms as `dram`. Defaults to `dram`.
  dramFloor?: string | number | Budget | readonly (string | number | Budget)[];
  // Watch memory pressure (PSI, cgroup limit) and shrink the hot cache under it, growing it
  // back toward the budget when pressure is gone (src/memory/pressure.ts). Needs `dram`.
  // Defaults to false.
  watchMemory?: boolean | WatchMemoryOptions;
  // Progress and notices during long steps (conversion), one line each.
  log?: (line: string) => void;
}

export type { ChatMessage };
