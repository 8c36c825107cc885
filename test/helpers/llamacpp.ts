// llama.cpp (through node-llama-cpp) as the reference our engine must match: tokenise,
// greedy raw completion and teacher-forced full-vocab logits on the same GGUF file.
// node-llama-cpp is loaded with a dynamic import so a missing package becomes a skip reason.
import { createHash } from "node:crypto";
import { mkdirSync, openSync, readSync, closeSync, statSync, readFileSync, writeFileSync, existsSync, renameSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Llama, LlamaModel, LlamaContext, LlamaContextSequence, Token } from "node-llama-cpp";

export interface LlamaCppOptions {
  // Compute threads. Defaults to 1 (its spinning pool is ~10x slower with 2 on 2-vCPU machines).
  threads?: number;
  // KV cache length in tokens. Defaults to 1024.
  contextSize?: number;
  // Tokens per decode batch; the teacher-forced window must fit in one. Defaults to 512.
  batchSize?: number;
  // llama.cpp's flash-attention kernel. Our attention follows its other path (q rounded to f16
  // against f16 keys, probabilities rounded to f16 against f16 values); the flash kernel sums
  // in another order and precision. Defaults to node-llama-cpp's choice ("auto": on, on CPU).
  flashAttention?: boolean;
}

export interface TimedCompletion {
  // Generated token ids, prompt excluded.
  ids: number[];
  // Wall time from the call to the first generated token: prompt evaluation plus one sample.
  firstTokenSeconds: number;
  // Wall time from the first to the last generated token (ids.length - 1 decode steps).
  decodeSeconds: number;
}

export class LlamaCppRef {
  private constructor(
    private readonly llama: Llama,
    private readonly model: LlamaModel,
    private readonly context: LlamaContext,
    private readonly sequence: LlamaContextSequence,
    readonly modelPath: string,
    readonly threads: number,
  ) {}

  // Returns the reference, or a string saying why it cannot run (package or binary missing).
  static async load(modelPath: string, options: LlamaCppOptions = {}): Promise<LlamaCppRef | string> {
    let lib: typeof import("node-llama-cpp");
    try {
      lib = await import("node-llama-cpp");
    } catch (e) {
      return `node-llama-cpp is not installed (${(e as Error).message.split("\n")[0]})`;
    }
    const threads = options.threads ?? 1;
    let llama: Llama;
    try {
      llama = await lib.getLlama({
        gpu: false,
        build: "never",
        logLevel: lib.LlamaLogLevel.error,
        maxThreads: threads,
        progressLogs: false,
      });
    } catch (e) {
      return `node-llama-cpp has no usable prebuilt binary (${(e as Error).message.split("\n")[0]})`;
    }
    const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
    const context = await model.createContext({
      contextSize: options.contextSize ?? 1024,
      batchSize: options.batchSize ?? 512,
      threads: { ideal: threads, min: threads },
      sequences: 1,
      ...(options.flashAttention !== undefined ? { flashAttention: options.flashAttention } : {}),
    });
    return new LlamaCppRef(llama, model, context, context.getSequence(), modelPath, threads);
  }

  // llama.cpp's CPU feature line ("AVX2 = 1 | AVX512 = 1 | ..."): the kernel paths it may use.
  get systemInfo(): string {
    return this.llama.systemInfo.trim();
  }

  get vocabSize(): number {
    return this.model.fileInfo.metadata.tokenizer.ggml.tokens.length;
  }

  get bosId(): number | undefined {
    return this.model.tokens.bos ?? undefined;
  }

  // tokenizer.ggml.add_bos_token as llama.cpp reads it (false for SmolLM2).
  get addsBos(): boolean {
    return this.model.tokens.shouldPrependBosToken;
  }

  // Raw text to ids. node-llama-cpp never adds BOS here (common_tokenize with add_special
  // false), so BOS is prepended only when asked and the model has one.
  tokenize(text: string, options: { addBos?: boolean; parseSpecial?: boolean } = {}): number[] {
    const ids = Array.from(this.model.tokenize(text, options.parseSpecial ?? false), Number);
    const bos = this.bosId;
    if (options.addBos && bos !== undefined) ids.unshift(bos);
    return ids;
  }

  detokenize(ids: readonly number[], special = false): string {
    return this.model.detokenize(ids as Token[], special);
  }

  // Greedy (argmax) completion of n tokens after promptIds, from an empty KV cache, with no
  // stop at end-of-generation tokens: the raw model, no template and no sampler chain.
  async greedy(promptIds: readonly number[], n: number): Promise<TimedCompletion> {
    await this.sequence.clearHistory();
    const ids: number[] = [];
    const t0 = performance.now();
    let tFirst = t0;
    for await (const token of this.sequence.evaluate(promptIds as Token[], { temperature: 0 })) {
      ids.push(token);
      if (ids.length === 1) tFirst = performance.now();
      if (ids.length >= n) break;
    }
    const tEnd = performance.now();
    return { ids, firstTokenSeconds: (tFirst - t0) / 1000, decodeSeconds: (tEnd - tFirst) / 1000 };
  }

  // Prompt evaluation alone, no logits kept: the prefill throughput measurement.
  async prefillSeconds(promptIds: readonly number[]): Promise<number> {
    await this.sequence.clearHistory();
    const t0 = performance.now();
    await this.sequence.evaluateWithoutGeneratingNewTokens(promptIds as Token[]);
    return (performance.now() - t0) / 1000;
  }

  // Teacher forcing: out[t] holds the raw logits (vocab long) for the token after ids[0..t].
  // With temperature 0 the sampler chain is greedy only, which leaves the logits untouched.
  async teacherForced(ids: readonly number[]): Promise<Float32Array[]> {
    await this.sequence.clearHistory();
    const vocab = this.vocabSize;
    const results = await this.sequence.controlledEvaluate(
      ids.map((id) => [id as Token, { generateNext: { logits: true } }]),
    );
    const out: Float32Array[] = [];
    for (let t = 0; t < ids.length; t++) {
      const logits = results[t]?.next.logits;
      if (!logits) throw new Error(`llama.cpp returned no logits at position ${t} of ${ids.length}`);
      if (logits.size !== vocab) {
        throw new Error(`llama.cpp returned ${logits.size} logits at position ${t}, expected the full vocab ${vocab}`);
      }
      const row = new Float32Array(vocab);
      for (const [token, value] of logits) row[token] = value;
      out.push(row);
    }
    await this.sequence.clearHistory();
    return out;
  }

  // teacherForced() through a cache file under os.tmpdir(), keyed by the model's identity and
  // the ids, so repeated test runs skip the reference pass.
  async teacherForcedCached(ids: readonly number[]): Promise<Float32Array[]> {
    const vocab = this.vocabSize;
    const key = createHash("sha256")
      .update(modelFingerprint(this.modelPath))
      // llama.cpp's logits depend on the batch size (batch 1 takes other kernels than 512).
      .update(`batch=${this.context.batchSize};threads=${this.threads};fa=${String(this.context.flashAttention)}`)
      .update(new Uint8Array(Int32Array.from(ids).buffer))
      .digest("hex")
      .slice(0, 24);
    const dir = join(tmpdir(), "activeflow-llamacpp-cache");
    const file = join(dir, `logits-${key}.f32`);
    const bytes = ids.length * vocab * 4;
    if (existsSync(file) && statSync(file).size === bytes) {
      const buf = readFileSync(file);
      const all = new Float32Array(buf.buffer, buf.byteOffset, ids.length * vocab);
      return ids.map((_, t) => all.slice(t * vocab, (t + 1) * vocab));
    }
    const rows = await this.teacherForced(ids);
    const all = new Float32Array(ids.length * vocab);
    rows.forEach((row, t) => all.set(row, t * vocab));
    mkdirSync(dir, { recursive: true });
    // Write then rename so a concurrent or interrupted run never reads a half file.
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, new Uint8Array(all.buffer));
    renameSync(tmp, file);
    return rows;
  }

  async dispose(): Promise<void> {
    await this.context.dispose();
    await this.model.dispose();
    await this.llama.dispose();
  }
}

export interface DistributionComparison {
  // Fraction of positions where both argmaxes agree.
  top1: number;
  // Mean over positions of KL(ref || ours) in nats, from the log-softmax of both.
  meanKl: number;
  maxKl: number;
  maxKlAt: number;
  // Positions whose argmaxes differ; refMargin = log p_ref(refTop) - log p_ref(oursTop), so
  // a small margin means llama.cpp itself was near a tie there.
  disagreements: { position: number; refTop: number; oursTop: number; refMargin: number }[];
}

// Compares per-position logits (same vocab) in float64 so the KL of near-equal
// distributions is not lost to rounding.
export function compareDistributions(ref: readonly Float32Array[], ours: readonly Float32Array[]): DistributionComparison {
  let agree = 0;
  let klSum = 0;
  let maxKl = -Infinity;
  let maxKlAt = -1;
  const disagreements: DistributionComparison["disagreements"] = [];
  for (let t = 0; t < ref.length; t++) {
    const p = ref[t]!;
    const q = ours[t]!;
    if (p.length !== q.length) throw new Error(`position ${t}: ours has ${q.length} logits, llama.cpp ${p.length}`);
    const lp = logSoftmax(p);
    const lq = logSoftmax(q);
    let kl = 0;
    for (let i = 0; i < lp.length; i++) kl += Math.exp(lp[i]!) * (lp[i]! - lq[i]!);
    const refTop = argmax(p);
    const oursTop = argmax(q);
    if (refTop === oursTop) agree++;
    else disagreements.push({ position: t, refTop, oursTop, refMargin: lp[refTop]! - lp[oursTop]! });
    klSum += kl;
    if (kl > maxKl) {
      maxKl = kl;
      maxKlAt = t;
    }
  }
  return { top1: agree / ref.length, meanKl: klSum / ref.length, maxKl, maxKlAt, disagreements };
}

function logSoftmax(x: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of x) if (v > max) max = v;
  let sum = 0;
  for (const v of x) sum += Math.exp(v - max);
  const lse = max + Math.log(sum);
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i]! - lse;
  return out;
}

function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

// Size, mtime and a hash of the first MiB identify a model file cheaply.
function modelFingerprint(path: string): string {
  const st = statSync(path);
  const head = Buffer.alloc(Math.min(1 << 20, st.size));
  const fd = openSync(path, "r");
  try {
    readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  return `${st.size}:${st.mtimeMs}:${createHash("sha256").update(head).digest("hex")}`;
}
