// The engine: loads a model, owns the KV position, runs the generation loop and sampling.
import { stat } from "node:fs/promises";
import type { ActivationCounts, ActivationTrace, Backend, BackendModel, SiteHistograms } from "../backend/Backend.js";
import { registeredBackend } from "../backend/registry.js";
import { ActiveflowError, isActiveflowError } from "../errors.js";
import { readGguf } from "../gguf/reader.js";
import { readModelConfig, type ModelConfig } from "../model/config.js";
import { splitFusedTensors } from "../model/fusedTensors.js";
import { chooseRopeFactors } from "../model/longRope.js";
import { refuseMoe } from "../model/moe.js";
import { createTokenizer, VOCAB_ARRAY_KEYS } from "../tokenizer/index.js";
import type { ChatMessage, Tokenizer } from "../tokenizer/types.js";
import { Sampler } from "./sampler.js";
import { TokenTextStream } from "./textStream.js";
import { StopMatcher } from "./stopStrings.js";
import { fitConversation } from "./contextShift.js";
import { checkTopLogprobs, logSumExp, topLogprobs } from "./logprobs.js";
import { CACHE_POLICIES, CACHE_POLICY_DEFAULT, SWAP_THREADS_DEFAULT, type FlashRunStats, type GeneratedToken, type GenerateOptions, type GenerationStats, type LoadOptions, type PlannerStats, type TuningStats } from "./types.js";
import { defaultThreads } from "./threads.js";
import { SITES } from "../backend/Backend.js";
import { ensureConverted } from "../flash/cache.js";
import { openFlashModel, recordOfOrder, type FlashModel } from "../flash/open.js";
import { KEY } from "../flash/format.js";
import { engineBytes, FLASH_BATCH, HEAD_STAGING_BYTES, parseBudget, planFlashMemory, resolveBudget, splitCache, type Budget, type FlashMemoryPlan } from "../memory/budget.js";
import { expertSpec, expertRunStats } from "./experts.js";
import type { GgufFile } from "../gguf/types.js";
import { loadCalibration } from "../sparsity/store.js";
import type { WatchMemoryOptions } from "../memory/pressure.js";
import { cacheForBudget, heldBesidesCache, planAboveFloor } from "../memory/adaptive.js";
import { thresholdsFor, type ThresholdTable } from "../sparsity/thresholds.js";
import { qualityOf } from "../sparsity/qualityFloor.js";
import { machineProfile, readCostOf } from "../pipeline/profile.js";
import { estimate } from "../pipeline/tuner.js";
import { JsonConstraint } from "../structured/constraint.js";
import { GrammarCache } from "../structured/grammars.js";
import { BudgetController } from "./BudgetController.js";
import { budgetsOf, checkBudgetBeforeConversion, contextLengthOf, parseLoadBudgets } from "./load.js";
import { preloadStats } from "./stats.js";
import { PRELOAD_DEFAULT, qualityFloorOf, tuneFor, tuneInputOf } from "./tune.js";

// Moved to tune.ts; still exported here for callers that took them from Engine.ts.
export { AUTO_MAX_SPARSITY, PRELOAD_DEFAULT } from "./tune.js";

// Tokens evaluated per prefill pass; larger batches amortise weight reads better but cost
// scratch memory proportional to n_batch * n_ff.
const PREFILL_BATCH = 64;

function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}

// The runtime floor: the process's RSS before any model is opened (Node, our modules and the
// backend's native addon), measured once per process (Engine.measureRuntimeFloor, or the first
// load). What the process holds above it is the model's memory, the part a budget is about.
let runtimeFloor: number | undefined;


export class Engine {
  readonly tokenizer: Tokenizer;
  readonly config: ModelConfig;
  readonly contextLength: number;
  readonly modelBytes: number;
  // Size of the model file given to load: what a budget percentage is of.
  sourceBytes = 0;
  readonly path: string;
  private model: BackendModel | undefined;
  private threads: number;
  // Token ids whose keys and values sit in the KV cache, in order; a new prompt reuses the
  // longest common prefix.
  private cached: number[] = [];
  private busy = false;
  // A native pass is running: budget changes wait for it to end (the next token boundary).
  private evaluating = false;
  private readonly logits: Float32Array;
  // Flash mode: the converted model, its memory plan and the sparsity in force.
  readonly flash: FlashModel | undefined;
  readonly plan: FlashMemoryPlan | undefined;
  // What the tuner chose when loaded with sparsity "auto".
  tuning: TuningStats | undefined;
  // Flash mode: how misses are read and the cache kept.
  planner: PlannerStats | undefined;
  // Whether the next group's channels are predicted and read ahead.
  predicting = true;
  // Whether every uncached record of the next site is read while one computes.
  readingAhead = false;
  // MoE models: pre-gating asked for (the plan reserves its slots when the budget allows).
  private pregating = true;
  private sparsityLevel = 0;
  private residentPeak = 0;
  // Run-time budget (setDramBudget, the memory watcher).
  private readonly budget: BudgetController;
  // Generated tokens so far while a generation runs, else null (for the history).
  private tokenIndex: number | null = null;
  // Schemas compiled for GenerateOptions.schema, with their cached token masks.
  private readonly grammars: GrammarCache;

  private constructor(
    path: string, model: BackendModel, tokenizer: Tokenizer, config: ModelConfig, contextLength: number, threads: number,
    private readonly io: { stagingSlots: number; maxRead: number },
    // The backend the model runs on (calibration computes column norms with it).
    readonly backend: Backend,
    flash?: FlashModel, plan?: FlashMemoryPlan,
  ) {
    this.flash = flash;
    this.plan = plan;
    this.path = path;
    this.model = model;
    this.tokenizer = tokenizer;
    this.config = config;
    this.contextLength = contextLength;
    this.threads = threads;
    this.modelBytes = model.info().fileBytes;
    this.logits = new Float32Array(config.nVocab);
    this.grammars = new GrammarCache(tokenizer, config.nVocab);
    this.budget = new BudgetController({
      evaluating: () => this.evaluating,
      tokenIndex: () => this.tokenIndex,
      resizeCache: (cache) => {
        // MoE models: the cache is the attention columns' and the expert slots' beyond the minimum.
        const split = splitCache(this.flash!, this.config, cache, this.pregating);
        this.live().setCacheBytes(split.columnBytes);
        if (this.flash!.experts.length > 0) this.live().setExpertPoolBytes(split.expertPoolBytes);
      },
    }, plan);
  }

  // Measures the runtime floor now, if it was not measured yet; a caller that reads model files
  // before loading (the CLI sizes the context from the tokenizer) calls it first.
  static measureRuntimeFloor(backend: Backend = registeredBackend()): number {
    if (runtimeFloor === undefined) {
      backend.ioDefaults(); // loads the addon: its code and static data belong to the floor
      runtimeFloor = process.memoryUsage.rss();
    }
    return runtimeFloor;
  }

  // backend: defaults to the one the platform entry point set (the native addon: src/index.ts).
  static async load(path: string, options: LoadOptions = {}, backend: Backend = registeredBackend()): Promise<Engine> {
    Engine.measureRuntimeFloor(backend);
    // Under a budget the loader thread and the device's own work need a core: one compute
    // thread measured faster there (bench/results/swap-*.json); in DRAM, the measured default.
    const threads = options.threads ?? (options.dram !== undefined ? SWAP_THREADS_DEFAULT : await defaultThreads(backend));
    if (!Number.isInteger(threads) || threads < 1 || threads > 256) {
      throw new ActiveflowError("BAD_ARGUMENT", `threads must be an integer from 1 to 256, got ${threads}`);
    }
    options.signal?.throwIfAborted();
    const auto = options.sparsity === "auto";
    let sparsity = options.sparsity === "auto" ? 0 : options.sparsity ?? 0;
    if (!(sparsity >= 0 && sparsity < 1)) throw new ActiveflowError("BAD_ARGUMENT", `sparsity must be in [0, 1) or "auto", got ${options.sparsity}`);
    if (auto && options.dram === undefined) throw new ActiveflowError("BAD_ARGUMENT", 'sparsity "auto" tunes for a DRAM budget: give `dram` too');
    const quality = qualityFloorOf(options);
    const budgets = parseLoadBudgets(options);
    if (quality && !auto) throw new ActiveflowError("BAD_ARGUMENT", `maxKl / minTop1 (a quality floor) apply only with sparsity "auto", got sparsity ${String(options.sparsity ?? 0)}`);
    // Each header is parsed once: the vocabulary (the largest part of a small model's header)
    // is read from the file given, and a conversion's header is read without it.
    let file = await readGguf(path);
    const source = path;
    const sourceBytes = (await stat(path)).size;
    const { budget, floor } = budgetsOf(budgets, sourceBytes);
    if (sparsity > 0 || auto) refuseMoe(file, "contextual sparsity (sparsity, --sparsity)");
    const tokenizer = createTokenizer(file);
    // A budget covers the engine's own memory too (the tokenizer's tables, the JS heap: budget.ts).
    const ownBytes = engineBytes({ tokens: tokenizer.vocabSize, merges: tokenizer.vocab.mergeRanks.size });
    const contextLength = contextLengthOf(options, tokenizer, readModelConfig(file).trainedContext);
    let sourceFile: GgufFile | undefined;
    if (options.dram !== undefined && !file.metadata.has(KEY.version)) {
      // The minimum follows from the shapes alone: an impossible budget fails here, in
      // milliseconds, not after a conversion that takes minutes and gigabytes on a 7B.
      checkBudgetBeforeConversion(file, floor ?? budget, contextLength, options, threads, backend.ioDefaults());
      path = await ensureConverted(backend, path, {
        ...(options.groupSize !== undefined ? { groupSize: options.groupSize } : {}),
        ...(options.keepSourceType ? { keepSourceType: true } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
        ...(options.log ? { log: options.log } : {}),
      });
      sourceFile = file;
      file = await readGguf(path, { omit: VOCAB_ARRAY_KEYS });
    }
    const config = readModelConfig(file);
    let table: ThresholdTable | undefined;
    if (sparsity > 0 || auto) {
      table = (await loadCalibration(path, file)) ?? (sourceFile ? await loadCalibration(source, sourceFile) : undefined);
      if (!table) {
        throw new ActiveflowError(
          "BAD_ARGUMENT",
          `${source}: sparsity ${options.sparsity} needs thresholds, and the model has no calibration; run \`activeflow calibrate ${source}\` first`,
        );
      }
      if (quality) qualityOf(table, source);
    }
    sourceFile = undefined; // its vocabulary lives on in the tokenizer; the rest is not needed
    let tuning: TuningStats | undefined;
    let flash: FlashModel | undefined;
    let plan: FlashMemoryPlan | undefined;
    let planner: PlannerStats | undefined;
    let model: BackendModel;
    const io = backend.ioDefaults();
    const cachePolicy = options.cachePolicy ?? CACHE_POLICY_DEFAULT;
    if (options.readGap !== undefined && !(Number.isInteger(options.readGap) && options.readGap >= -1)) {
      throw new ActiveflowError("BAD_ARGUMENT", `readGap must be an integer number of bytes >= -1, got ${options.readGap}`);
    }
    if (!CACHE_POLICIES.includes(cachePolicy)) {
      throw new ActiveflowError("BAD_ARGUMENT", `cache policy must be one of ${CACHE_POLICIES.join(", ")}, got ${String(cachePolicy)}`);
    }
    if (file.metadata.has(KEY.version)) {
      flash = await openFlashModel(path, file);
      if (cachePolicy === "static" && flash.extents.some((e) => !e.recordFreq)) {
        throw new ActiveflowError("BAD_ARGUMENT", `${path}: cache policy static needs the records' calibrated frequencies (${KEY.recordFreq("attn_in")} ...); run \`activeflow reorder ${path}\` first`);
      }
      if (auto) {
        tuning = await tuneFor(backend, flash, table!, planFlashMemory(flash, config, contextLength, threads, floor ?? budget, { io, preload: false, engineBytes: ownBytes }), options);
        sparsity = tuning.sparsity;
      }
      plan = planFlashMemory(flash, config, contextLength, threads, floor ?? budget, { io, sparsity, preload: options.preload ?? PRELOAD_DEFAULT, readAhead: options.readAhead ?? false, groupSize: flash.groupSize, engineBytes: ownBytes });
      const profile = await machineProfile(backend, path);
      const noPreload = planFlashMemory(flash, config, contextLength, threads, floor ?? budget, { io, sparsity, preload: false, groupSize: flash.groupSize, engineBytes: ownBytes });
      planner = {
        merge: options.readGap !== undefined ? "gap" : "cost", readGapBytes: options.readGap ?? null, cachePolicy, cacheSplit: "read-cost",
        predictedTokensPerSecond: estimate(tuneInputOf(flash, noPreload, [sparsity], options, profile), sparsity, flash.groupSize).tokensPerSecond,
      };
      if (tuning) Object.assign(tuning, { cacheBytes: plan.cacheBytes, preloadBytes: plan.preloadBytes });
      if (options.dram === undefined) plan.budgetBytes = plan.weightBytes + plan.kvBytes + plan.scratchBytes + plan.engineBytes;
      else if (floor !== undefined) plan = planAboveFloor(plan, budget);
      model = await backend.loadModel({
        path,
        config: { ...config, nCtx: contextLength, nBatch: FLASH_BATCH },
        tensors: chooseRopeFactors(path, flash.resident, config, contextLength).map((t) => ({ name: t.name, type: t.type, dims: [...t.dims], offset: t.offset })),
        threads,
        flash: {
          groupSize: flash.groupSize,
          extents: flash.extents.map((e) => ({
            group: e.group,
            site: SITES.indexOf(e.site),
            firstLayer: e.firstLayer,
            layers: e.layers,
            tensors: e.parts.length / e.layers,
            type: e.columnType,
            nIn: e.nIn,
            offset: e.offset,
            recordBytes: e.recordBytes,
            parts: e.parts.map((p) => ({ offset: p.offset, bytes: p.bytes, nOut: p.nOut, type: p.type, ...(p.scales ? { scales: p.scales } : {}) })),
            ...(e.recordOrder ? { recordOf: recordOfOrder(e.recordOrder) } : {}),
            ...(e.recordFreq ? { recordFreq: e.recordFreq } : {}),
          })),
          crcs: flash.crc,
          crcBase: flash.extents[0]?.offset ?? 0,
          verify: options.verifyReads ?? false,
          direct: true,
          cacheBytes: splitCache(flash, config, plan.cacheBytes, options.pregate ?? true).columnBytes,
          ...(flash.experts.length > 0 ? { experts: expertSpec(flash, splitCache(flash, config, plan.cacheBytes, options.pregate ?? true).expertPoolBytes, options.pregate ?? true) } : {}),
          embdResident: plan.embdResident,
          headResident: plan.headResident,
          headStagingBytes: HEAD_STAGING_BYTES,
          readCost: readCostOf(profile),
          ...(options.readGap !== undefined ? { maxGap: options.readGap } : {}),
          cachePolicy,
          preloadBytes: plan.preloadBytes,
          predict: options.preload ?? PRELOAD_DEFAULT,
          readAhead: options.readAhead ?? false,
          predictMargin: options.predictMargin ?? 1,
        },
      });
    } else {
      model = await backend.loadModel({
        path,
        config: { ...config, nCtx: contextLength, nBatch: PREFILL_BATCH },
        tensors: chooseRopeFactors(path, splitFusedTensors(file).tensors, config, contextLength)
          .map((t) => ({ name: t.name, type: t.type, dims: t.dims, offset: file.dataOffset + t.offset })),
        threads,
      });
    }
    options.onProgress?.(1);
    if (options.signal?.aborted) {
      model.dispose();
      options.signal.throwIfAborted();
    }
    const engine = new Engine(path, model, tokenizer, config, contextLength, threads, io, backend, flash, plan);
    engine.tuning = tuning;
    engine.sourceBytes = sourceBytes;
    engine.predicting = options.preload ?? PRELOAD_DEFAULT;
    engine.pregating = options.pregate ?? true;
    engine.readingAhead = (options.readAhead ?? false) && plan !== undefined && plan.preloadBytes > 0 && flash!.groupSize === 1;
    engine.planner = planner;
    if (table) {
      // The thresholds are on the score the table was calibrated for.
      if (table.selection === "weight") model.setColumnNorms(table.columnNorms!);
      model.setThresholds(thresholdsFor(table, sparsity));
      engine.sparsityLevel = sparsity;
    }
    if (options.watchMemory) engine.watchMemory(options.watchMemory === true ? {} : options.watchMemory);
    return engine;
  }

  // The context length the model was trained with (its GGUF header); contextLength may exceed it.
  get trainedContext(): number {
    return this.config.trainedContext;
  }

  get sparsity(): number {
    return this.sparsityLevel;
  }

  // Counters of a flash-mode run since the last reset, in the units `run --json` reports.
  flashStats(reset = false): FlashRunStats | undefined {
    if (!this.flash || !this.plan) return undefined;
    const model = this.live();
    const f = model.flashStats(reset);
    const counts = model.siteCounts(reset);
    this.residentPeak = Math.max(this.residentPeak, f.weightResidentBytes);
    const frac = (s: number) => (counts.seen[s]! > 0 ? counts.kept[s]! / counts.seen[s]! : 1);
    const xs = this.flash.experts.length > 0 ? expertRunStats(model.expertStats(reset)!, this.pregating, splitCache(this.flash, this.config, this.budget.appliedCacheBytes, this.pregating).minSlots) : undefined;
    return {
      dramBudgetBytes: this.budget.budgetBytes,
      weightResidentBytesPeak: this.residentPeak,
      weightResidentBytes: f.weightResidentBytes,
      kvBytes: f.kvBytes,
      scratchBytes: f.scratchBytes,
      engineBytes: this.plan.engineBytes,
      cacheBytes: f.cacheBytes ?? 0,
      headResident: this.plan.headResident,
      sparsity: this.sparsityLevel,
      flashBytesRead: (f.bytesRead ?? 0) + (f.headBytesRead ?? 0) + (xs?.expertBytesRead ?? 0),
      flashReads: f.deviceReads ?? 0,
      meanReadBytes: f.deviceReads ? (f.bytesRead ?? 0) / f.deviceReads : 0,
      cacheHitRate: f.lookups ? (f.hits ?? 0) / f.lookups : 0,
      cacheHitRateBySite: Object.fromEntries(SITES.map((site, i) => {
        const l = f.siteLookups?.[i] ?? 0;
        return [site, l > 0 ? (f.siteHits?.[i] ?? 0) / l : null];
      })) as FlashRunStats["cacheHitRateBySite"],
      planner: this.planner!,
      activeFraction: { q: frac(0), k: frac(0), v: frac(0), o: frac(1), gate: frac(2), up: frac(2), down: frac(3) },
      ioWaitSeconds: f.ioWaitSeconds ?? 0,
      computeSeconds: f.columnComputeSeconds ?? 0,
      budgetHistory: this.budget.history.map((h) => ({ ...h })),
      preload: preloadStats(f, this.predicting || this.readingAhead ? this.plan.preloadBytes : 0, this.flash.groupSize, this.readingAhead),
      ...(xs ? { experts: xs } : {}),
      ...(this.tuning ? { tuning: this.tuning } : {}),
    };
  }

  get isa(): string {
    return this.live().info().isa;
  }

  private live(): BackendModel {
    if (!this.model) throw new ActiveflowError("DISPOSED", "engine has been disposed");
    return this.model;
  }

  setThreads(threads: number): void {
    this.live().setThreads(threads);
    this.threads = threads;
  }

  // Contextual sparsity: per-(layer, site) thresholds ([nLayer * 4]) or null for dense.
  // The KV cache was computed under the old setting, so it is dropped.
  setThresholds(thresholds: Float32Array | null): void {
    this.live().setThresholds(thresholds);
    this.cached = [];
  }

  // Weight-aware selection (columnNorms.ts): inputs are kept by |x_j| x norms_j; null restores
  // magnitude selection. Thresholds must be on the same score. Drops the KV cache, as above.
  setColumnNorms(norms: Float32Array | null): void {
    this.live().setColumnNorms(norms);
    this.cached = [];
  }

  // Records score histograms of every linear layer's input while evaluating (calibration).
  setCapture(on: boolean, clear = false): void {
    this.live().setCapture(on, clear);
  }

  histograms(): SiteHistograms {
    return this.live().histograms();
  }

  // Per-channel active counts and, with trace, the active set of every evaluated row at every
  // (layer, site) (cache and layout studies); clear drops what was gathered.
  setActivationCapture(counts: boolean, trace: boolean, clear = false): void {
    this.live().setActivationCapture(counts, trace, clear);
  }

  activationCounts(reset = false): ActivationCounts {
    return this.live().activationCounts(reset);
  }

  // The rows traced since the last call (moved out of the backend).
  takeActivationTrace(): ActivationTrace {
    return this.live().takeActivationTrace();
  }

  // Active elements kept / seen per site since the last reset.
  siteCounts(reset = false): { kept: number[]; seen: number[] } {
    return this.live().siteCounts(reset);
  }

  // Evaluates `ids` after the longest cached prefix they share; returns the last logits and
  // how many tokens were reused from the cache.
  private async prefill(ids: readonly number[], signal?: AbortSignal): Promise<{ logits: Float32Array; reused: number }> {
    const model = this.live();
    if (ids.length === 0) throw new ActiveflowError("BAD_ARGUMENT", "prompt is empty: nothing to evaluate");
    if (ids.length > this.contextLength) {
      throw new ActiveflowError("CONTEXT_FULL", `prompt has ${ids.length} tokens; the context holds ${this.contextLength} (use a larger --ctx)`);
    }
    let keep = 0;
    while (keep < this.cached.length && keep < ids.length && this.cached[keep] === ids[keep]) keep++;
    if (keep === ids.length) keep--; // re-evaluate the last token to get its logits
    this.cached.length = keep;
    if (keep === 0 && this.flash) model.resetCacheCounts(); // LFU counts restart per sequence
    this.budget.apply();
    const rest = Int32Array.from(ids.slice(keep));
    await this.run(() => model.eval(rest, keep, this.logits, false), signal);
    this.cached.push(...rest);
    return { logits: this.logits, reused: keep };
  }

  private async run(fn: () => Promise<void>, signal?: AbortSignal): Promise<void> {
    const model = this.live();
    const onAbort = () => model.abort();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      signal?.throwIfAborted();
      this.evaluating = true;
      await fn();
    } catch (e) {
      // A half-evaluated pass leaves the cache tail undefined: forget it.
      this.cached = [];
      if (signal?.aborted) throw new ActiveflowError("ABORTED", "generation aborted");
      throw e;
    } finally {
      this.evaluating = false;
      signal?.removeEventListener("abort", onAbort);
    }
  }

  // Teacher forcing: logits after each prefix of `ids` (one Float32Array(nVocab) per position).
  async evaluateLogits(ids: readonly number[], signal?: AbortSignal): Promise<Float32Array[]> {
    const model = this.live();
    if (ids.length > this.contextLength) {
      throw new ActiveflowError("CONTEXT_FULL", `${ids.length} tokens exceed the context length ${this.contextLength}`);
    }
    this.enter();
    try {
      this.cached = [];
      const out: Float32Array[] = [];
      const V = this.config.nVocab;
      for (let start = 0; start < ids.length; start += PREFILL_BATCH) {
        const chunk = Int32Array.from(ids.slice(start, start + PREFILL_BATCH));
        const buf = new Float32Array(chunk.length * V);
        this.budget.apply();
        await this.run(() => model.eval(chunk, start, buf, true), signal);
        for (let i = 0; i < chunk.length; i++) out.push(buf.subarray(i * V, (i + 1) * V));
        this.cached.push(...chunk);
      }
      return out;
    } finally {
      this.busy = false;
    }
  }

  private enter(): void {
    this.live();
    if (this.busy) throw new ActiveflowError("BAD_ARGUMENT", "the engine is already generating; one generation at a time");
    this.busy = true;
  }

  // Raw completion of a prompt (text, or token ids used as given).
  async *generate(prompt: string | readonly number[], options: GenerateOptions = {}): AsyncGenerator<GeneratedToken, GenerationStats, void> {
    const ids = typeof prompt === "string" ? this.tokenizer.encode(prompt, { addSpecial: options.addSpecial ?? true }) : [...prompt];
    return yield* this.generateIds(ids, options);
  }

  // Renders the chat template, then generates the assistant's reply. A conversation that
  // does not fit the context loses its oldest turns (options.contextShift); the stats say how
  // many messages went, so a caller keeping the history can drop them too.
  async *chat(messages: readonly ChatMessage[], options: GenerateOptions = {}): AsyncGenerator<GeneratedToken, GenerationStats, void> {
    // Templates write BOS themselves when the model wants it; control tokens are real here.
    const render = (m: readonly ChatMessage[]) =>
      this.tokenizer.encode(this.tokenizer.applyChatTemplate(m, { addGenerationPrompt: true }), { addSpecial: false, parseSpecial: true });
    let ids: number[];
    let shift: GenerationStats["contextShift"];
    if (options.contextShift === false) {
      ids = render(messages);
    } else {
      const reserve = Math.max(1, Math.min(options.maxTokens ?? 128, Math.floor(this.contextLength / 2)));
      const fit = fitConversation(messages, render, this.contextLength, reserve);
      ids = fit.ids;
      if (fit.droppedMessages > 0) shift = { droppedMessages: fit.droppedMessages, droppedTokens: fit.droppedTokens };
    }
    const stats = yield* this.generateIds(ids, options);
    if (shift) stats.contextShift = shift;
    return stats;
  }

  private async *generateIds(ids: number[], options: GenerateOptions): AsyncGenerator<GeneratedToken, GenerationStats, void> {
    const stop = new StopMatcher(options.stop ?? []);
    const nLogprobs = options.logprobs === undefined ? undefined : checkTopLogprobs(options.logprobs);
    const constraint = options.schema === undefined ? undefined : new JsonConstraint(this.grammars.get(options.schema));
    this.enter();
    const maxTokens = options.maxTokens ?? 128;
    if (!Number.isInteger(maxTokens) || maxTokens < 0) {
      this.busy = false;
      throw new ActiveflowError("BAD_ARGUMENT", `maxTokens must be a non-negative integer, got ${maxTokens}`);
    }
    const sampler = new Sampler(options);
    const stopAtEos = options.stopAtEos ?? true;
    const text = new TokenTextStream(this.tokenizer);
    const history = [...ids];
    this.flashStats(true);
    const budgetFrom = this.budget.history.length - 1; // the change in force now starts this generation's list
    this.tokenIndex = 0;
    const stats: GenerationStats = {
      promptTokens: ids.length,
      prefillTokens: 0,
      reusedTokens: 0,
      generatedTokens: 0,
      prefillSeconds: 0,
      decodeSeconds: 0,
      prefillTokensPerSecond: 0,
      decodeTokensPerSecond: 0,
      peakRssBytes: 0,
      runtimeFloorBytes: runtimeFloor ?? 0,
      modelBytes: this.modelBytes,
      threads: this.threads,
      isa: this.isa,
      stopReason: "length",
    };
    try {
      const t0 = performance.now();
      let logits: Float32Array;
      try {
        const p = await this.prefill(ids, options.signal);
        logits = p.logits;
        stats.reusedTokens = p.reused;
        stats.prefillTokens = ids.length - p.reused;
      } catch (e) {
        if (isActiveflowError(e) && e.code === "ABORTED") {
          stats.stopReason = "aborted";
          return stats;
        }
        throw e;
      }
      const t1 = performance.now();
      stats.prefillSeconds = (t1 - t0) / 1000;
      stats.prefillTokensPerSecond = stats.prefillSeconds > 0 ? stats.prefillTokens / stats.prefillSeconds : 0;
      const model = this.live();
      const one = new Int32Array(1);
      let decodeStart = t1;
      for (let i = 0; i < maxTokens; i++) {
        // Before sampling: the sampler reads `logits` but does not change them, and a schema's
        // mask works on a copy, so logprobs are the model's own distribution.
        const lse = nLogprobs === undefined ? 0 : logSumExp(logits);
        const top = nLogprobs === undefined ? undefined : topLogprobs(logits, nLogprobs, lse);
        let id: number;
        if (constraint) {
          // Tokens that may follow this one: maxTokens and the context both bound them.
          const left = Math.min(maxTokens - i, this.contextLength - this.cached.length + 1) - 1;
          id = constraint.choose(sampler.sample(constraint.apply(logits, left), history), logits);
        } else {
          id = sampler.sample(logits, history);
        }
        const probs = top === undefined ? {} : { logprob: logits[id]! - lse, topLogprobs: top };
        if ((stopAtEos || constraint) && this.tokenizer.stopIds.has(id)) {
          stats.stopReason = "eos";
          break;
        }
        constraint?.accept(id);
        history.push(id);
        stats.generatedTokens++;
        this.tokenIndex = stats.generatedTokens; // a change made while this token is out applies to the next
        const piece = stop.push(text.push(id));
        if (piece.stopped) {
          stats.stopReason = "stop";
          yield { id, text: piece.emit, ...probs };
          break;
        }
        // The last token of a length or context stop carries any text held for a stop string.
        const done = constraint?.done === true; // the JSON value is complete: nothing may follow
        const full = i + 1 === maxTokens || this.cached.length >= this.contextLength || done;
        yield { id, text: full ? piece.emit + stop.flush() : piece.emit, ...probs };
        if (i === 0) decodeStart = performance.now(); // decode speed excludes the first sample's wait on the consumer
        if (done) {
          stats.stopReason = "eos";
          break;
        }
        if (i + 1 === maxTokens) break;
        if (this.cached.length >= this.contextLength) {
          stats.stopReason = "context";
          break;
        }
        one[0] = id;
        this.tokenIndex = stats.generatedTokens;
        this.budget.apply();
        try {
          await this.run(() => model.eval(one, this.cached.length, this.logits, false), options.signal);
        } catch (e) {
          if (isActiveflowError(e) && e.code === "ABORTED") {
            stats.stopReason = "aborted";
            break;
          }
          throw e;
        }
        this.cached.push(id);
        logits = this.logits;
      }
      const t2 = performance.now();
      const held = stop.flush(); // an end of sequence or an abort while text was held back
      if (held !== "") yield { id: -1, text: held };
      const decoded = Math.max(0, stats.generatedTokens - 1);
      stats.decodeSeconds = (t2 - decodeStart) / 1000;
      stats.decodeTokensPerSecond = stats.decodeSeconds > 0 && decoded > 0 ? decoded / stats.decodeSeconds : 0;
      if (constraint) stats.structured = { maskSeconds: constraint.seconds, masksComputed: constraint.masksComputed };
      return stats;
    } finally {
      stats.peakRssBytes = peakRssBytes();
      const flash = this.model ? this.flashStats() : undefined;
      if (flash) {
        flash.budgetHistory = this.budget.history.slice(Math.max(0, budgetFrom)).map((h) => ({ ...h }));
        stats.flash = flash;
      }
      this.tokenIndex = null;
      this.busy = false;
      if (this.model) this.budget.apply(); // a change asked for after the last token

    }
  }

  // ---- Run-time DRAM budget (PAPER.md: when the budget changes, only the cache is retuned) ----

  // The budget in force (bytes); changes asked for during a generation apply at its next token.
  get dramBudget(): number {
    return this.budget.dramBudget;
  }

  // The smallest budget setDramBudget accepts: the planner's minimum, or what the engine holds
  // besides its cache as loaded (the head and preload buffers stay as planned at load).
  get dramMinimum(): number {
    const { plan } = this.flashPlan("dramMinimum");
    return Math.max(plan.minimumBytes, heldBesidesCache(plan));
  }

  // Changes the DRAM budget without reloading: bytes, "512MB" or a percentage of the model file
  // given to load ("35%"). It applies at once unless a token is being computed, then at the next token boundary.
  // Only the hot cache is resized (staging, preload buffers, head and KV stay as loaded);
  // shrinking frees the cache's memory. A budget below the minimum throws BUDGET_TOO_SMALL and
  // the old budget stays. Returns the budget in bytes.
  setDramBudget(budget: number | string | Budget, reason?: string): number {
    const { flash, plan } = this.flashPlan("setDramBudget");
    const parsed = parseBudget(budget);
    const bytes = resolveBudget(parsed, this.sourceBytes);
    if (!Number.isFinite(bytes) || bytes <= 0) throw new ActiveflowError("BAD_ARGUMENT", `setDramBudget: the budget must be a positive number of bytes, got ${parsed.text}`);
    // The planner's own checks (and its message) for the minimum.
    planFlashMemory(flash, this.config, this.contextLength, this.threads, Math.floor(bytes), { io: this.io });
    const cacheBytes = cacheForBudget(plan, Math.floor(bytes));
    this.budget.request(Math.floor(bytes), cacheBytes, reason);
    return Math.floor(bytes);
  }

  // Starts the memory-pressure watcher (LoadOptions.watchMemory).
  watchMemory(options: WatchMemoryOptions = {}): void {
    this.flashPlan("watchMemory");
    this.budget.watch(options);
  }

  private flashPlan(what: string): { flash: FlashModel; plan: FlashMemoryPlan } {
    this.live();
    if (!this.flash || !this.plan) throw new ActiveflowError("BAD_ARGUMENT", `${what} needs a model loaded with a DRAM budget (the dram option)`);
    return { flash: this.flash, plan: this.plan };
  }

  async dispose(): Promise<void> {
    this.budget.stop();
    this.model?.dispose();
    this.model = undefined;
    this.cached = [];
  }
}
