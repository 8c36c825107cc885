import { ActiveflowError } from "../errors.js";
import { Rng, randomSeed } from "./rng.js";
import type { SamplingOptions } from "./types.js";

// Picks the next token from a logits row.
//
// Order (llama.cpp's default chain, so the same options mean the same thing there):
//   repetition penalty -> top-k -> top-p -> min-p -> temperature -> softmax -> seeded draw.
// top-p and min-p therefore see the temperature-1 distribution, and temperature only
// reshapes what survived them. Greedy (greedy: true or temperature <= 0) is the argmax after
// the repetition penalty, and does not advance the PRNG.
//
// Speed: the vocab (49152 for SmolLM2) is never sorted when top-k is set: a k-entry min-heap
// selects the candidates in one pass. Without top-k, a sort happens only when top-p needs it.

const DEFAULTS = {
  temperature: 0.8,
  topK: 40,
  topP: 0.95,
  minP: 0.05,
  repeatPenalty: 1,
  repeatLastN: 64,
} as const;

// A float32 value widened to float64 leaves the low 29 mantissa bits zero; sortCandidates
// stores the token id there (vocabularies stay far below 2^29).
const ID_MASK = 0x1fffffff;
// Index of the low 32-bit word of a float64 in a Uint32Array view (platform byte order).
const LOW_WORD = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1 ? 0 : 1;

export interface SamplerDistribution {
  // Surviving candidate ids and their final probabilities (after temperature), same order.
  ids: number[];
  probs: number[];
}

export class Sampler {
  readonly seed: number;
  readonly greedy: boolean;
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  readonly minP: number;
  readonly repeatPenalty: number;
  readonly repeatLastN: number;
  private readonly rng: Rng;

  // Scratch, grown to the vocab size on first use and reused for every token.
  private penalized = new Float32Array(0); // [vocab] logits after the repetition penalty
  private candIds = new Int32Array(0); // [vocab] candidate ids, best first once sorted
  private candLogits = new Float64Array(0); // [vocab] their logits
  private heapIds = new Int32Array(0); // [topK] min-heap for top-k selection
  private heapVals = new Float64Array(0); // [topK]
  private weights = new Float64Array(0); // [vocab] exp(logit - max) for shrinkForTopP
  private sortKeys = new Float64Array(0); // [vocab] packed (logit, id) keys for sortCandidates
  private sortWords = new Uint32Array(0); // [2 * vocab] the same bytes as 32-bit words

  constructor(opts: SamplingOptions = {}) {
    this.temperature = checkNumber("temperature", opts.temperature ?? DEFAULTS.temperature, -1e9, 1e9);
    this.greedy = opts.greedy === true || this.temperature <= 0;
    this.topK = checkInt("topK", opts.topK ?? DEFAULTS.topK, 0);
    this.topP = checkNumber("topP", opts.topP ?? DEFAULTS.topP, 0, 1);
    this.minP = checkNumber("minP", opts.minP ?? DEFAULTS.minP, 0, 1);
    this.repeatPenalty = checkNumber("repeatPenalty", opts.repeatPenalty ?? DEFAULTS.repeatPenalty, 0, Infinity);
    if (this.repeatPenalty === 0) {
      throw new ActiveflowError("BAD_ARGUMENT", "sampling option repeatPenalty must be > 0, got 0");
    }
    this.repeatLastN = checkInt("repeatLastN", opts.repeatLastN ?? DEFAULTS.repeatLastN, 0);
    this.seed = opts.seed === undefined ? randomSeed() : checkInt("seed", opts.seed, 0);
    this.rng = new Rng(this.seed);
  }

  sample(logits: Float32Array, history: readonly number[]): number {
    const x = this.applyPenalty(logits, history);
    if (this.greedy) return argmax(x);
    const m = this.selectCandidates(x);
    if (m === 0) return argmax(x);
    const ids = this.candIds;
    const ls = this.candLogits;
    const max = maxOf(ls, m);
    const invT = 1 / this.temperature;
    // Weights overwrite the candidate logits: one exp per candidate.
    let total = 0;
    for (let i = 0; i < m; i++) {
      const w = Math.exp((ls[i]! - max) * invT);
      ls[i] = w;
      total += w;
    }
    const u = this.rng.nextFloat() * total;
    let acc = 0;
    for (let i = 0; i < m; i++) {
      acc += ls[i]!;
      if (u < acc) return ids[i]!;
    }
    return ids[m - 1]!; // rounding left u at the very top
  }

  // The distribution sample() draws from (greedy: the argmax with probability 1). For tests
  // and for callers that want to show probabilities; does not advance the PRNG.
  distribution(logits: Float32Array, history: readonly number[]): SamplerDistribution {
    const x = this.applyPenalty(logits, history);
    if (this.greedy) return { ids: [argmax(x)], probs: [1] };
    const m = this.selectCandidates(x);
    if (m === 0) return { ids: [argmax(x)], probs: [1] };
    const max = maxOf(this.candLogits, m);
    const ids: number[] = [];
    const probs: number[] = [];
    let total = 0;
    for (let i = 0; i < m; i++) {
      const w = Math.exp((this.candLogits[i]! - max) / this.temperature);
      ids.push(this.candIds[i]!);
      probs.push(w);
      total += w;
    }
    for (let i = 0; i < m; i++) probs[i]! /= total;
    return { ids, probs };
  }

  // llama.cpp semantics: each distinct token among the last repeatLastN is penalised once;
  // positive logits are divided by the penalty, the rest multiplied. The caller's array is
  // left untouched.
  private applyPenalty(logits: Float32Array, history: readonly number[]): Float32Array {
    if (this.repeatPenalty === 1 || this.repeatLastN === 0 || history.length === 0) return logits;
    if (this.penalized.length !== logits.length) this.penalized = new Float32Array(logits.length);
    const x = this.penalized;
    x.set(logits);
    const seen = new Set<number>();
    for (let i = Math.max(0, history.length - this.repeatLastN); i < history.length; i++) {
      const id = history[i]!;
      if (id < 0 || id >= x.length || seen.has(id)) continue;
      seen.add(id);
      const v = x[id]!;
      x[id] = v > 0 ? v / this.repeatPenalty : v * this.repeatPenalty;
    }
    return x;
  }

  // Fills candIds/candLogits with the survivors of top-k, top-p and min-p (in that order) and
  // returns their count. -Infinity (masked) and NaN logits never survive.
  private selectCandidates(x: Float32Array): number {
    const n = x.length;
    if (this.candIds.length < n) {
      this.candIds = new Int32Array(n);
      this.candLogits = new Float64Array(n);
    }
    let m: number;
    let sorted: boolean;
    if (this.topK > 0 && this.topK < n) {
      m = this.topKInto(x, this.topK);
      sorted = true;
    } else {
      m = 0;
      for (let i = 0; i < n; i++) {
        const v = x[i]!;
        if (v > -Infinity) {
          this.candIds[m] = i;
          this.candLogits[m] = v;
          m++;
        }
      }
      sorted = false;
    }
    if (m === 0) return 0;

    if (this.topP < 1) {
      let total: number | undefined;
      if (!sorted) {
        ({ m, total } = this.shrinkForTopP(m));
        this.sortCandidates(m);
      }
      m = this.topPCut(m, total);
    }
    if (this.minP > 0) m = this.minPCut(m);
    return m;
  }

  // One pass with a k-entry min-heap; ties keep the lower id. Output is sorted best first.
  private topKInto(x: Float32Array, k: number): number {
    if (this.heapIds.length < k) {
      this.heapIds = new Int32Array(k);
      this.heapVals = new Float64Array(k);
    }
    const hi = this.heapIds;
    const hv = this.heapVals;
    let size = 0;
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      if (!(v > -Infinity)) continue; // -Infinity and NaN
      if (size < k) {
        let c = size++;
        while (c > 0) {
          const p = (c - 1) >> 1;
          if (!worse(v, i, hv[p]!, hi[p]!)) break;
          hv[c] = hv[p]!;
          hi[c] = hi[p]!;
          c = p;
        }
        hv[c] = v;
        hi[c] = i;
      } else if (v > hv[0]!) {
        siftDown(hv, hi, size, v, i);
      }
    }
    // Pop the heap worst-first into the tail of the output: ends sorted best-first.
    for (let end = size - 1; end >= 0; end--) {
      this.candIds[end] = hi[0]!;
      this.candLogits[end] = hv[0]!;
      if (end > 0) siftDown(hv, hi, end, hv[end]!, hi[end]!);
    }
    return size;
  }

  // Sorts candidates best first without a JS comparator (165 ms for 49152 entries here):
  // each float32-exact logit is widened to float64, whose 29 spare low mantissa bits carry
  // the id, so one native numeric sort orders (logit, id) pairs.
  private sortCandidates(m: number): void {
    if (this.sortKeys.length < m) {
      this.sortKeys = new Float64Array(m);
      this.sortWords = new Uint32Array(this.sortKeys.buffer);
    }
    const keys = this.sortKeys.subarray(0, m);
    const words = this.sortWords;
    const ls = this.candLogits;
    const ids = this.candIds;
    for (let i = 0; i < m; i++) {
      keys[i] = ls[i]!;
      words[2 * i + LOW_WORD] = (words[2 * i + LOW_WORD]! & ~ID_MASK) | ids[i]!;
    }
    keys.sort();
    for (let i = 0; i < m; i++) {
      const j = m - 1 - i; // ascending sort, read back to front
      const lo = words[2 * j + LOW_WORD]!;
      ids[i] = lo & ID_MASK;
      words[2 * j + LOW_WORD] = lo & ~ID_MASK;
      ls[i] = keys[j]!;
    }
  }

  // Before sorting the whole vocab for top-p: the tokens within a few nats of the best one
  // usually hold more than topP of the mass, and then the cut lies among them, so only they
  // need sorting. Returns the kept count and the mass of all m candidates, in exp(l - max)
  // units, which topPCut needs as its reference.
  private shrinkForTopP(m: number): { m: number; total: number } {
    const ls = this.candLogits;
    const ids = this.candIds;
    if (this.weights.length < m) this.weights = new Float64Array(ls.length);
    const w = this.weights;
    const max = maxOf(ls, m);
    let total = 0;
    for (let i = 0; i < m; i++) {
      w[i] = Math.exp(ls[i]! - max);
      total += w[i]!;
    }
    const target = this.topP * total;
    for (const nats of [6, 12, 24]) {
      const floor = max - nats;
      let mass = 0;
      for (let i = 0; i < m; i++) if (ls[i]! >= floor) mass += w[i]!;
      if (mass < target) continue;
      let kept = 0;
      for (let i = 0; i < m; i++) {
        if (ls[i]! >= floor) {
          ls[kept] = ls[i]!;
          ids[kept] = ids[i]!;
          kept++;
        }
      }
      return { m: kept, total };
    }
    return { m, total };
  }

  // Keeps the shortest best-first prefix whose probability mass reaches topP (at least one).
  // `total` is the mass of the full candidate set when the caller already dropped its tail.
  private topPCut(m: number, totalMass?: number): number {
    const ls = this.candLogits;
    const max = ls[0]!;
    let total = totalMass ?? 0;
    if (totalMass === undefined) for (let i = 0; i < m; i++) total += Math.exp(ls[i]! - max);
    const target = this.topP * total;
    let acc = 0;
    for (let i = 0; i < m; i++) {
      acc += Math.exp(ls[i]! - max);
      if (acc >= target) return i + 1;
    }
    return m;
  }

  // Keeps tokens with p >= minP * p(max), i.e. logit >= max + ln(minP); order is preserved.
  private minPCut(m: number): number {
    const ls = this.candLogits;
    const ids = this.candIds;
    const floor = maxOf(ls, m) + Math.log(this.minP);
    let kept = 0;
    for (let i = 0; i < m; i++) {
      if (ls[i]! >= floor) {
        ls[kept] = ls[i]!;
        ids[kept] = ids[i]!;
        kept++;
      }
    }
    return kept;
  }
}

// Heap order: "worse" means lower logit, or equal logit and higher id (so lower ids win ties).
function worse(v: number, id: number, v2: number, id2: number): boolean {
  return v < v2 || (v === v2 && id > id2);
}

// Places (v, id) at the root of a min-heap of `size` entries and restores the heap order.
function siftDown(hv: Float64Array, hi: Int32Array, size: number, v: number, id: number): void {
  let c = 0;
  for (;;) {
    let child = 2 * c + 1;
    if (child >= size) break;
    const r = child + 1;
    if (r < size && worse(hv[r]!, hi[r]!, hv[child]!, hi[child]!)) child = r;
    if (!worse(hv[child]!, hi[child]!, v, id)) break;
    hv[c] = hv[child]!;
    hi[c] = hi[child]!;
    c = child;
  }
  hv[c] = v;
  hi[c] = id;
}

// First index of the largest value (llama.cpp's greedy tie rule); NaN never wins.
function argmax(x: Float32Array): number {
  let best = 0;
  let bestV = -Infinity;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (v > bestV) {
      bestV = v;
      best = i;
    }
  }
  return best;
}

function maxOf(a: Float64Array, m: number): number {
  let max = -Infinity;
  for (let i = 0; i < m; i++) if (a[i]! > max) max = a[i]!;
  return max;
}

function checkNumber(name: string, v: number, min: number, max: number): number {
  if (typeof v !== "number" || Number.isNaN(v) || v < min || v > max) {
    throw new ActiveflowError("BAD_ARGUMENT", `sampling option ${name} must be a number in [${min}, ${max}], got ${v}`);
  }
  return v;
}

function checkInt(name: string, v: number, min: number): number {
  if (!Number.isSafeInteger(v) || v < min) {
    throw new ActiveflowError("BAD_ARGUMENT", `sampling option ${name} must be an integer >= ${min}, got ${v}`);
  }
  return v;
}
