// Log-probabilities of the model's next-token distribution (GenerateOptions.logprobs): the
// softmax of the raw logits at temperature 1, before any sampling option reshapes them, as
// OpenAI's API and llama.cpp's server report them by default.
import { ActiveflowError } from "../errors.js";

export interface TokenLogprob {
  id: number;
  logprob: number;
}

// Most alternatives a caller may ask for per token (OpenAI's top_logprobs allows 20).
export const MAX_TOP_LOGPROBS = 20;

export function checkTopLogprobs(n: number): number {
  if (!Number.isInteger(n) || n < 0 || n > MAX_TOP_LOGPROBS) {
    throw new ActiveflowError("BAD_ARGUMENT", `logprobs must be an integer from 0 to ${MAX_TOP_LOGPROBS}, got ${n}`);
  }
  return n;
}

// log(sum(exp(logits))), shifted by the maximum so no term overflows.
export function logSumExp(logits: Float32Array): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  if (max === -Infinity) return -Infinity;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  return max + Math.log(sum);
}

// The n most likely tokens, best first (lower id first among equal logits), as log-probabilities
// given the row's logSumExp. One pass with a sorted array of n entries: n is at most 20.
export function topLogprobs(logits: Float32Array, n: number, lse: number): TokenLogprob[] {
  const ids: number[] = [];
  const vals: number[] = [];
  for (let i = 0; i < logits.length && n > 0; i++) {
    const v = logits[i]!;
    if (ids.length === n && !(v > vals[n - 1]!)) continue;
    let at = ids.length === n ? n - 1 : ids.length;
    while (at > 0 && v > vals[at - 1]!) at--;
    ids.splice(at, 0, i);
    vals.splice(at, 0, v);
    if (ids.length > n) {
      ids.pop();
      vals.pop();
    }
  }
  return ids.map((id, i) => ({ id, logprob: vals[i]! - lse }));
}
