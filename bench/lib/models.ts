// The models the dense benchmark runs: the real SmolLM2 and a ~1B random-weight Q4_0 llama
// from our synthesizer, cached in the model cache so it is written once.
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

type Synthesize = (shape: string, type: number, outPath: string, options: { seed: number }) => Promise<unknown>;

export async function synth1bModel(log: (s: string) => void): Promise<BenchModel> {
  const m: BenchModel = { name: "synth-1b-q4_0", note: "random weights: speed only" };
  const path = join(modelsDir(), "synth-1b-q4_0.gguf");
  if (existsSync(path)) return { ...m, path };
  let synthesizeModel: Synthesize | undefined;
  try {
    // Non-literal specifier: the synthesizer is optional for this harness.
    const spec = "../../src/synth/synth.js";
    synthesizeModel = ((await import(spec)) as { synthesizeModel?: Synthesize }).synthesizeModel;
  } catch (e) {
    return { ...m, reason: `synthesizer not available (${(e as Error).message.split("\n")[0]})` };
  }
  if (typeof synthesizeModel !== "function") return { ...m, reason: "src/synth/synth has no synthesizeModel()" };
  await mkdir(modelsDir(), { recursive: true });
  log(`writing ${path} (random weights, seed ${SYNTH_SEED}) ...`);
  // Write beside and rename, so an interrupted run never leaves a truncated model behind.
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    await synthesizeModel("1b", GgmlType.Q4_0, tmp, { seed: SYNTH_SEED });
  } catch (e) {
    rmSync(tmp, { force: true });
    return { ...m, reason: `synthesizing the 1b Q4_0 model failed: ${(e as Error).message}` };
  }
  renameSync(tmp, path);
  return { ...m, path };
}
