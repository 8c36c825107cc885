// The models the dense benchmark runs: the real SmolLM2 and random-weight llamas from our
// synthesizer (1B and 7B shapes, Q4_0, Q4_K and a Q4_K_M mix), cached in the model cache so
// each is written once.
import { existsSync, renameSync, rmSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { modelsDir } from "../../src/fetch/cache.js";
import { GgmlType } from "../../src/gguf/types.js";
import { findSmolLM2 } from "../../test/helpers/smollm2.js";

export interface BenchModel {
  name: string;
  path?: string;
  // Why the model is not available, when path is undefined.
  reason?: string;
  // What the numbers may be used for.
  note: string;
}

export const SYNTH_SEED = 1234;

export async function smollm2Model(): Promise<BenchModel> {
  const found = await findSmolLM2();
  const m: BenchModel = { name: "smollm2-135m-q4_1", note: "real weights" };
  if (found.path !== undefined) m.path = found.path;
  if (found.reason !== undefined) m.reason = found.reason;
  return m;
}

type Synthesize = (shape: string, type: number, outPath: string, options: { seed: number; mix?: "q4_k_m" }) => Promise<unknown>;

// The random-weight models bench:dense can run, by name: shape, type, optional mix, file;
// optIn ones run only when named in --models.
export const SYNTH_MODELS: Record<string, { shape: string; type: number; mix?: "q4_k_m"; file: string; optIn?: boolean }> = {
  synth1b: { shape: "1b", type: GgmlType.Q4_0, file: "synth-1b-q4_0.gguf" },
  synth7b: { shape: "llama2-7b", type: GgmlType.Q4_0, file: "synth-llama2-7b-q4_0.gguf" },
  "synth7b-q4k": { shape: "llama2-7b", type: GgmlType.Q4_K, file: "synth-llama2-7b-q4_k.gguf" },
  "synth1b-q4km": { shape: "1b", type: GgmlType.Q4_K, mix: "q4_k_m", file: "synth-1b-q4_k_m.gguf" },
  // Mixture of experts (qwen3moe layout, 1.9B parameters, 0.6B active per token).
  "synth-moe2b": { shape: "moe-2b", type: GgmlType.Q4_0, file: "synth-moe-2b-q4_0.gguf", optIn: true },
};

// A synthesized model from the model cache, written there (seed SYNTH_SEED) when missing.
export async function synthModel(name: string, log: (s: string) => void): Promise<BenchModel> {
  const spec = SYNTH_MODELS[name];
  if (!spec) return { name, note: "unknown", reason: `unknown model "${name}"` };
  const m: BenchModel = { name: spec.file.replace(/\.gguf$/, ""), note: "random weights: speed only" };
  const path = join(modelsDir(), spec.file);
  if (existsSync(path)) return { ...m, path };
  let synthesizeModel: Synthesize | undefined;
  try {
    // Non-literal specifier: the synthesizer is optional for this harness.
    const mod = "../../src/synth/synth.js";
    synthesizeModel = ((await import(mod)) as { synthesizeModel?: Synthesize }).synthesizeModel;
  } catch (e) {
    return { ...m, reason: `synthesizer not available (${(e as Error).message.split("\n")[0]})` };
  }
  if (typeof synthesizeModel !== "function") return { ...m, reason: "src/synth/synth has no synthesizeModel()" };
  await mkdir(modelsDir(), { recursive: true });
  log(`writing ${path} (random weights, seed ${SYNTH_SEED}) ...`);
  // Write beside and rename, so an interrupted run never leaves a truncated model behind.
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    await synthesizeModel(spec.shape, spec.type, tmp, { seed: SYNTH_SEED, ...(spec.mix ? { mix: spec.mix } : {}) });
  } catch (e) {
    rmSync(tmp, { force: true });
    return { ...m, reason: `synthesizing ${spec.file} failed: ${(e as Error).message}` };
  }
  renameSync(tmp, path);
  return { ...m, path };
}
