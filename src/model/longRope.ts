// Phi-3 LongRoPE (the 128k-context Phi-3 models, Phi-3.5): two sets of per-pair frequency
// divisors, rope_factors_short and rope_factors_long. llama.cpp takes the long set when the
// context is longer than rope.scaling.original_context_length, else the short one, and a
// rope_freqs tensor before either (llama_model::get_rope_factors). The chosen set goes to the
// backend as rope_freqs.weight, the divisors it already applies for Llama 3; the attention
// factor that comes with it is ModelConfig.ropeAttnFactor.
import { ActiveflowError } from "../errors.js";
import type { ModelConfig } from "./config.js";

const SHORT = "rope_factors_short.weight";
const LONG = "rope_factors_long.weight";
const FREQS = "rope_freqs.weight";

// `tensors` with the factors for a context of `contextLength` tokens renamed rope_freqs.weight
// and the other set left out; unchanged without LongRoPE factors (every architecture but phi3).
export function chooseRopeFactors<T extends { name: string; dims: readonly number[] }>(
  path: string, tensors: readonly T[], config: ModelConfig, contextLength: number,
): T[] {
  if (config.arch !== "phi3" || !tensors.some((t) => t.name === SHORT || t.name === LONG)) return [...tensors];
  const hasFreqs = tensors.some((t) => t.name === FREQS);
  const chosen = contextLength > config.ropeOriginalContext ? LONG : SHORT;
  const out: T[] = [];
  for (const t of tensors) {
    if (t.name !== SHORT && t.name !== LONG) {
      out.push(t);
      continue;
    }
    if (t.dims.length !== 1 || t.dims[0] !== config.nRot / 2) {
      throw new ActiveflowError("MODEL_BAD_SHAPE", `${path}: tensor ${t.name} has dims [${t.dims.join(", ")}], expected [${config.nRot / 2}] (rope.dimension_count / 2)`);
    }
    if (t.name === chosen && !hasFreqs) out.push({ ...t, name: FREQS });
  }
  return out;
}
