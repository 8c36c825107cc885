// The DRAM budget: parsing "--dram" values and splitting a budget between the parts of a
// flash-layout model (DESIGN.md, "Memory: what the budget means"). The numbers here mirror
// what the native side allocates (native/model: resident copies, staging, cache, KV, scratch).
import { ActiveflowError } from "../errors.js";
import type { ModelConfig } from "../model/config.js";

const UNITS: Record<string, number> = { "": 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1 << 20, mb: 1 << 20, mib: 1 << 20, g: 1 << 30, gb: 1 << 30, gib: 1 << 30 };

// A DRAM budget parsed once where it enters (the CLI, LoadOptions, setDramBudget, the server):
// bytes, or a percentage of the model file given to load, which resolveBudget turns into bytes
// once that file's size is known. `text` is the value as given, for messages.
export type Budget =
  | { readonly kind: "bytes"; readonly bytes: number; readonly text: string }
  | { readonly kind: "percent"; readonly percent: number; readonly text: string };

// "35%" (of the model file given), "512MB", "2GiB", "123456"; a number is bytes as given, and
// a Budget passes through.
export function parseBudget(value: string | number | Budget): Budget {
  if (typeof value === "object") return value;
  if (typeof value === "number") return { kind: "bytes", bytes: value, text: String(value) };
  const v = value.trim().toLowerCase();
  const pct = /^(\d+(?:\.\d+)?)%$/.exec(v);
  if (pct) {
    const p = Number(pct[1]);
    if (!(p > 0)) throw new ActiveflowError("BAD_ARGUMENT", `--dram ${value}: a percentage must be above 0`);
    return { kind: "percent", percent: p, text: value };
  }
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/.exec(v);
  const unit = m ? UNITS[m[2]!] : undefined;
  if (!m || unit === undefined) {
    throw new ActiveflowError("BAD_ARGUMENT", `--dram ${value}: expected bytes, a size such as 512MB or 2GB, or a percentage such as 35%`);
  }
  const bytes = Math.floor(Number(m[1]) * unit);
  if (!(bytes > 0)) throw new ActiveflowError("BAD_ARGUMENT", `--dram ${value}: must be above 0`);
  return { kind: "bytes", bytes, text: value };
}

// The budget in bytes; a percentage is of `fileBytes` (the size of the model file given).
export function resolveBudget(budget: Budget, fileBytes: number): number {
  return budget.kind === "bytes" ? budget.bytes : Math.floor((fileBytes * budget.percent) / 100);
}

export const HEAD_STAGING_BYTES = 4 << 20;
// Tokens per prefill pass in flash mode (scratch grows with it).
export const FLASH_BATCH = 16;

const alignPage = (n: number) => Math.ceil(n / 4096) * 4096;
const align64 = (n: number) => Math.ceil(n / 64) * 64;

export interface FlashMemoryPlan {
  budgetBytes: number;
  minimumBytes: number;
  // Norms, biases, rope factors and split columns' scale planes: always in DRAM.
  smallResidentBytes: number;
  headResident: boolean;
  headBytes: number;
  embdResident: boolean;
  stagingBytes: number; // the largest extent (every record of one visit) + I/O staging + head/row staging
  kvBytes: number;
  scratchBytes: number;
  cacheBytes: number;
  // Two preload buffers (the computing layer group and the next one); 0 = on demand only.
  preloadBytes: number;
  // Weight bytes the plan keeps in DRAM at most (resident tensors + staging + preload + cache).
  weightBytes: number;
  // The engine's own memory besides the native buffers above (engineBytes): charged before the
  // head and the cache as far as the budget leaves room above the minimum.
  engineBytes: number;
}

export interface FlashPlanOptions {
  // The reader's staging slots and largest read (the backend's ioDefaults()): its staging is
  // their product.
  io: { stagingSlots: number; maxRead: number };
  // Expected sparsity: sizes the preload buffers (a group's records x (1 - sparsity)).
  sparsity?: number;
  // Preload predicted channels of the next layer group. Defaults to false. Without it, files
  // with groups of several layers still get the buffers: a record read on demand holds the
  // channel for every layer of its group, and the buffer keeps it for them.
  preload?: boolean;
  // Read every uncached record of the next site while one computes (groups of one layer):
  // the two buffers hold a whole extent each. Defaults to false.
  readAhead?: boolean;
  groupSize?: number;
  // The engine's own memory (engineBytes), charged before the head and the cache. Defaults to 0.
  engineBytes?: number;
}

// What the process holds for a model above its runtime floor besides the buffers the plan sizes
// (docs/MEMORY.md): what a loaded tokenizer keeps, per token and per BPE merge, with the room V8
// leaves around a live heap of that size, and a base the same for every model (the engine's
// objects, the headers, V8's young generation, the addon's allocator arenas, Node's code paged in
// after the floor was taken). Measured by bench/engineMemory.ts (bench/results/engine-memory-*):
// the base from `run --dram` of a tiny model less its weights, KV cache and scratch; tokens and
// merges from SmolLM2's run, split between them as tokenizers loaded alone split (141 and 118 B;
// a run holds 1.46 times that). Medians of 9 runs: bench/results/engine-memory-2026-12-03T19-50-40Z.json.
export const ENGINE_BYTES_PER_TOKEN = 205;
export const ENGINE_BYTES_PER_MERGE = 172;
export const ENGINE_BASE_BYTES = 2_975_000;

export function engineBytes(vocab: { tokens: number; merges: number }): number {
  return alignPage(ENGINE_BASE_BYTES + vocab.tokens * ENGINE_BYTES_PER_TOKEN + vocab.merges * ENGINE_BYTES_PER_MERGE);
}

// The engine's memory is not part of the minimum: a budget the native buffers fit in is not
// refused for it (the demo's and the examples' budgets stay valid), it takes what the budget
// leaves above them first, and a run whose budget could not hold all of it goes over by the
// rest, which the memory line reports. The part of `engine` that `roomBytes` holds:
export function engineCharged(engine: number, roomBytes: number): number {
  return Math.min(engine, Math.max(0, roomBytes));
}

// A preload buffer holds the predicted records that are not cached of one layer group, or with
// groups of one layer of one residual-fed site (attn_in or ffn_in: they are prefetched site by
// site): at sparsity s about (1 - s) of those bytes, plus room for the union over the group's
// layers and prediction false positives.
export const PRELOAD_SLACK = 1.25;
// The preload buffers never take more than this share of what the budget leaves for the cache.
export const PRELOAD_MAX_SHARE = 0.5;

export function kvBytes(cfg: ModelConfig, nCtx: number): number {
  return 2 * cfg.nLayer * nCtx * cfg.nHeadKv * cfg.headDim * 2; // f16 keys and values
}

// Mirrors the native Scratch sizes for a batch of nBatch tokens.
export function scratchBytes(cfg: ModelConfig, nBatch: number, nCtx: number, threads: number): number {
  const q = cfg.nHead * cfg.headDim, kv = cfg.nHeadKv * cfg.headDim;
  const wide = Math.max(cfg.nEmbd, cfg.nFf, q);
  const floats = nBatch * (cfg.nEmbd + wide + q + 2 * kv + q + 2 * cfg.nFf) + threads * nCtx * 3 + cfg.nVocab; // scores + value-row pointers
  // Quantised activations: at most ~1.2 bytes per input element of the widest input.
  return floats * 4 + nBatch * Math.ceil(wide * 1.2) + 64 + moeScratchBytes(cfg, nBatch);
}

// Mirrors native MoeFfn's buffers in flash mode (model/moe_ffn.h), 4-byte elements; its
// quantised inputs are counted at 4 bytes per element (F32 routers), an upper bound.
function moeScratchBytes(cfg: ModelConfig, nBatch: number): number {
  const m = cfg.moe;
  if (!m) return 0;
  const E = cfg.nEmbd, F = m.nFfExp, NE = m.nExpert, S = m.nFfShexp;
  const rows = nBatch * m.nExpertUsed;
  const elems = nBatch * NE + 4 * rows + NE + 1 + rows * (2 * F + E) + E + (S > 0 ? nBatch * (2 * S + E) : 0) +
    rows * E + nBatch * (E + NE) + 2 * rows;
  return elems * 4 + 2 * (rows * 4 * Math.max(E, S) + 64);
}

// What the plan needs of a flash-layout model: an opened file (FlashModel) or, before a
// conversion, the layout planFlashLayout computes from the source's shapes (flashShapeOf).
export interface FlashShape {
  groupSize: number;
  // Copied tensors and scale planes (everything but the extents).
  resident: readonly { name: string; bytes: number }[];
  extents: readonly { bytes: number; site: string; group: number }[];
  // Mixture-of-experts models: the experts' spans (src/flash/experts.ts).
  experts?: readonly { spanBytes: number }[];
  expertShape?: { nExpert: number; shared: boolean };
}

export function weightBytesOf(flash: FlashShape): number {
  return flash.resident.reduce((s, t) => s + t.bytes, 0) + flash.extents.reduce((s, e) => s + e.bytes, 0) +
    (flash.experts ?? []).reduce((s, x) => s + x.spanBytes, 0);
}

// The expert slots a plan needs at least (a token's routed experts and the shared one) and
// their size (the largest expert); none for a dense model.
function expertNeeds(flash: FlashShape, cfg: ModelConfig): { slotBytes: number; minSlots: number; count: number } {
  if (!cfg.moe || !flash.experts || flash.experts.length === 0) return { slotBytes: 0, minSlots: 0, count: 0 };
  const slotBytes = Math.max(...flash.experts.map((x) => x.spanBytes));
  return { slotBytes, minSlots: cfg.moe.nExpertUsed + (cfg.moe.nFfShexp > 0 ? 1 : 0), count: flash.experts.length };
}

export function planFlashMemory(
  flash: FlashShape,
  cfg: ModelConfig,
  nCtx: number,
  threads: number,
  budgetBytes: number,
  options: FlashPlanOptions,
): FlashMemoryPlan {
  // flash.resident lists the copied tensors and the scale planes of split sites: every one but
  // the embedding and the head is small and resident, so the planes are charged here.
  const tied = !flash.resident.some((t) => t.name === "output.weight");
  let small = 0, headBytes = 0;
  for (const t of flash.resident) {
    if (t.name === "output.weight" || (tied && t.name === "token_embd.weight")) headBytes = t.bytes;
    else if (t.name !== "token_embd.weight") small += align64(t.bytes);
  }
  const embdRow = flash.resident.find((t) => t.name === "token_embd.weight");
  const rowStaging = embdRow ? alignPage(embdRow.bytes / cfg.nVocab) : 0;
  const largestExtent = Math.max(...flash.extents.map((e) => alignPage(e.bytes)));
  const ioStaging = options.io.stagingSlots * options.io.maxRead;
  const kv = kvBytes(cfg, nCtx);
  const scratch = scratchBytes(cfg, FLASH_BATCH, nCtx, threads);
  const experts = expertNeeds(flash, cfg);
  const expertMin = experts.minSlots * experts.slotBytes;
  const fixed = small + largestExtent + ioStaging + rowStaging + kv + scratch + expertMin;
  const minimum = fixed + HEAD_STAGING_BYTES;
  if (budgetBytes < minimum) {
    throw new ActiveflowError(
      "BUDGET_TOO_SMALL",
      `a DRAM budget of ${fmt(budgetBytes)} is below this model's minimum of ${fmt(minimum)} ` +
        `(staging ${fmt(largestExtent + ioStaging)}, KV cache ${fmt(kv)} for ${nCtx} tokens, scratch ${fmt(scratch)}, norms and scale planes ${fmt(small)}` +
        `${experts.minSlots > 0 ? `, ${experts.minSlots} expert slots ${fmt(expertMin)}` : ""})`,
    );
  }
  // The engine's own memory is held whatever the plan, so it is charged first. The head is read
  // in full every token, the cache only helps for the share it hits, so the head comes next.
  let left = budgetBytes - fixed;
  const engine = options.engineBytes ?? 0;
  left -= engineCharged(engine, left - HEAD_STAGING_BYTES);
  const headResident = headBytes > 0 && align64(headBytes) <= left;
  if (headResident) left -= align64(headBytes);
  else left -= HEAD_STAGING_BYTES;
  // The two preload buffers want: a whole extent each for read-ahead (plus the pages its planned
  // reads may start and end in); else a group's (or residual-fed site's) predicted records.
  let want = 0;
  if (options.readAhead === true && (options.groupSize ?? 1) === 1) {
    want = 2 * (largestExtent + 2 * 4096);
  } else if (options.preload === true || (options.groupSize ?? 1) > 1) {
    const groups = new Map<number, number>();
    for (const e of flash.extents) groups.set(e.group, (groups.get(e.group) ?? 0) + alignPage(e.bytes));
    const groupBytes = flash.groupSize === 1
      ? Math.max(...flash.extents.filter((e) => e.site === "attn_in" || e.site === "ffn_in").map((e) => alignPage(e.bytes)))
      : Math.max(...groups.values());
    want = 2 * groupBytes * Math.min(1, (1 - (options.sparsity ?? 0)) * PRELOAD_SLACK);
  }
  let preloadBytes = 0;
  if (want > 0 && left > 0) {
    preloadBytes = alignPage(Math.floor(Math.min(want, left * PRELOAD_MAX_SHARE) / 2)) * 2;
    if (preloadBytes > left) preloadBytes = 0;
    left -= preloadBytes;
  }
  // The hot cache: for MoE models the column cache and the expert slots beyond the minimum
  // (splitCache; the minimum slots are held like staging).
  const cacheBytes = Math.max(0, Math.floor(left * 0.98)); // slack for per-extent rounding
  const weightBytes = small + largestExtent + ioStaging + rowStaging + (headResident ? align64(headBytes) : HEAD_STAGING_BYTES) + preloadBytes + cacheBytes + expertMin;
  return {
    budgetBytes, minimumBytes: minimum, smallResidentBytes: small, headResident, headBytes, embdResident: false,
    stagingBytes: largestExtent + ioStaging + rowStaging + (headResident ? 0 : HEAD_STAGING_BYTES),
    kvBytes: kv, scratchBytes: scratch, cacheBytes, preloadBytes, weightBytes, engineBytes: engine,
  };
}

// A hot cache of `cacheBytes` split between the column cache (attention extents) and whole
// experts beyond the minimum slots: attention is read by every token, an expert by K of N
// (random routing), so attention's columns are cached first and the rest buys expert slots.
// With `pregate`, a second set of the minimum slots comes first of all when the cache can hold
// it (pregateSlots; none otherwise): pre-gating reads the next layer's predicted experts while
// this layer computes, into slots this layer has not pinned, and with only the minimum every
// slot is pinned, so it reads nothing (moe-disk-moe2b-2026-12-03T19-46-03Z). They are taken from
// the attention columns because those bytes buy less there: k slots of columns save k slot
// bytes of reads per token, while the k spare slots, reused by each layer in turn, let every
// layer's expert reads start under the previous layer's compute (on moe-2b at 11 %: 14 MB, ~8
// ms of reads per token, against ~28 ms of expert compute left unoverlapped).
// Dense models: all columns.
export interface CacheSplit {
  columnBytes: number;
  expertPoolBytes: number;
  expertSlots: number;
  // The minimum slots (a token's routed experts and the shared one) and the spare ones
  // reserved for pre-gating (0 or minSlots).
  minSlots: number;
  pregateSlots: number;
}

export function splitCache(flash: FlashShape, cfg: ModelConfig, cacheBytes: number, pregate = false): CacheSplit {
  const x = expertNeeds(flash, cfg);
  if (x.minSlots === 0) return { columnBytes: cacheBytes, expertPoolBytes: 0, expertSlots: 0, minSlots: 0, pregateSlots: 0 };
  const spare = pregate && x.minSlots * x.slotBytes <= cacheBytes && 2 * x.minSlots <= x.count ? x.minSlots : 0;
  const rest = cacheBytes - spare * x.slotBytes;
  const attention = flash.extents.reduce((n, e) => n + alignPage(e.bytes), 0);
  const extra = Math.min(x.count - x.minSlots - spare, Math.floor(Math.max(0, rest - attention) / x.slotBytes));
  const expertSlots = x.minSlots + spare + extra;
  return { columnBytes: rest - extra * x.slotBytes, expertPoolBytes: expertSlots * x.slotBytes, expertSlots, minSlots: x.minSlots, pregateSlots: spare };
}

export function fmt(bytes: number): string {
  if (bytes >= 1 << 30) return `${(bytes / (1 << 30)).toFixed(2)} GiB`;
  if (bytes >= 1 << 20) return `${(bytes / (1 << 20)).toFixed(1)} MiB`;
  if (bytes >= 1 << 10) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${bytes} B`;
}
