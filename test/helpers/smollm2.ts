// Where the real SmolLM2-135M-Instruct Q4_1 file is, for tests that need it. Tests never
// download: the file is taken from the model cache ($ACTIVEFLOW_CACHE/models or
// ~/.cache/activeflow/models); the fetcher (src/fetch/smollm2.ts) is asked only when
// ACTIVEFLOW_TEST_FETCH=1 allows it to reach the network.
import { existsSync } from "node:fs";
import { copyFile, mkdir, symlink } from "node:fs/promises";
import { join } from "node:path";
import { cacheRoot, modelsDir, sidecarPath } from "../../src/fetch/cache.js";

export const SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf";

export interface ModelLookup {
  path?: string;
  // Why the model is unavailable, for t.skip().
  reason?: string;
}

export async function findSmolLM2(): Promise<ModelLookup> {
  const cached = join(modelsDir(), SMOLLM2_FILE);
  if (existsSync(cached)) return { path: cached };
  if (process.env.ACTIVEFLOW_TEST_FETCH === "1") {
    try {
      // Non-literal specifier: the fetcher is optional here and may not be built yet.
      const spec = "../../src/fetch/smollm2.js";
      const mod = (await import(spec)) as { ensureSmolLM2?: () => Promise<string> };
      if (typeof mod.ensureSmolLM2 === "function") return { path: await mod.ensureSmolLM2() };
      return { reason: `src/fetch/smollm2 has no ensureSmolLM2(); ${SMOLLM2_FILE} not in ${modelsDir()}` };
    } catch (e) {
      return { reason: `fetching SmolLM2 failed: ${(e as Error).message}` };
    }
  }
  return {
    reason: `${SMOLLM2_FILE} not found in ${modelsDir()}; fetch it once (ensureSmolLM2) or set ACTIVEFLOW_TEST_FETCH=1`,
  };
}

// The model path, or undefined when absent (findSmolLM2().reason says why).
export async function smollm2Path(): Promise<string | undefined> {
  return (await findSmolLM2()).path;
}

// Makes `dir` a model cache ($ACTIVEFLOW_CACHE) holding a link to the cached SmolLM2 file
// `found` (no download, no copy) with its verification sidecar, so `fetch smollm2` there
// finds it verified, and this machine's profile, so nothing is re-measured. Returns the
// model's path inside `dir`; conversions and calibration tables made there stay there.
export async function linkSmolLM2Into(dir: string, found: string): Promise<string> {
  await mkdir(join(dir, "models"), { recursive: true });
  const model = join(dir, "models", SMOLLM2_FILE);
  await symlink(found, model);
  if (existsSync(sidecarPath(found))) await copyFile(sidecarPath(found), sidecarPath(model));
  const profile = join(cacheRoot(), "machine-profile.json");
  if (existsSync(profile)) await copyFile(profile, join(dir, "machine-profile.json"));
  return model;
}
