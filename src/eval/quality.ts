// Teacher-forced quality of a sparse model against the same model dense: perplexity of the
// text, mean KL(dense || sparse) of the next-token distributions, and top-1 agreement.
import type { Engine } from "../engine/Engine.js";

export interface QualityResult {
  ppl: number;
  ppl_dense: number;
  kl_to_dense: number;
  top1_agreement: number;
  tokens: number;
  // Fraction of input elements kept per site (attn_in, attn_out, ffn_in, ffn_out).
  active_fraction: number[];
}

export function logSoftmax(x: Float32Array): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < x.length; i++) if (x[i]! > max) max = x[i]!;
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += Math.exp(x[i]! - max);
  const lse = max + Math.log(sum);
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i]! - lse;
  return out;
}

export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

export interface QualityOptions {
  // Tokens per teacher-forced window (each window starts a fresh context). Defaults to 512.
  window?: number;
  // The dense model scored against (same vocabulary), e.g. the source GGUF of a flash file.
  // Defaults to `engine` itself with no thresholds.
  reference?: Engine;
  signal?: AbortSignal;
  onProgress?: (fraction: number) => void;
}

// Scores every position of each window but its first (which has no context).
export async function evaluateQuality(
  engine: Engine,
  ids: readonly number[],
  thresholds: Float32Array | null,
  options: QualityOptions = {},
): Promise<QualityResult> {
  const window = Math.min(options.window ?? 512, engine.contextLength);
  let nllSparse = 0, nllDense = 0, kl = 0, agree = 0, n = 0;
  const kept = [0, 0, 0, 0], seen = [0, 0, 0, 0];
  for (let start = 0; start + 1 < ids.length; start += window) {
    const w = ids.slice(start, start + window);
    if (w.length < 2) break;
    const ref = options.reference ?? engine;
    ref.setThresholds(null);
    const dense = (await ref.evaluateLogits(w, options.signal)).map((l) => logSoftmax(l));
    let sparse: Float64Array[] = dense;
    if (options.reference && !thresholds) {
      engine.setThresholds(null);
      sparse = (await engine.evaluateLogits(w, options.signal)).map((l) => logSoftmax(l));
    }
    if (thresholds) {
      engine.setThresholds(thresholds);
      engine.siteCounts(true);
      sparse = (await engine.evaluateLogits(w, options.signal)).map((l) => logSoftmax(l));
      const c = engine.siteCounts(true);
      for (let s = 0; s < 4; s++) {
        kept[s]! += c.kept[s]!;
        seen[s]! += c.seen[s]!;
      }
    }
    for (let i = 0; i + 1 < w.length; i++) {
      const d = dense[i]!, sp = sparse[i]!;
      const next = w[i + 1]!;
      nllDense -= d[next]!;
      nllSparse -= sp[next]!;
      let k = 0;
      for (let v = 0; v < d.length; v++) {
        const pd = Math.exp(d[v]!);
        if (pd > 0) k += pd * (d[v]! - sp[v]!);
      }
      kl += k;
      if (argmax(d) === argmax(sp)) agree++;
      n++;
    }
    options.onProgress?.(Math.min(1, (start + window) / ids.length));
  }
  engine.setThresholds(null);
  return {
    ppl: Math.exp(nllSparse / n),
    ppl_dense: Math.exp(nllDense / n),
    kl_to_dense: kl / n,
    top1_agreement: agree / n,
    tokens: n,
    active_fraction: thresholds ? kept.map((k, s) => (seen[s]! > 0 ? k / seen[s]! : 1)) : [1, 1, 1, 1],
  };
}
