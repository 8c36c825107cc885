// The default compute thread count: measured once per machine (the engine's own thread
// pool running the dense kernels at 1..N threads, about half a second) and cached in the
// machine profile. On a 2-vCPU machine the second thread may help (memory-bound decode of a
// large model) or not (a pool fighting Node's threads), so it is measured, not assumed.
import { availableParallelism, cpus } from "node:os";
import type { ThreadProbe } from "../backend/Backend.js";
import type { ThreadScaling } from "../backend/probeTypes.js";
import { cachedProfileEntry } from "../pipeline/profile.js";

// Threads tried at most: past 8, memory bandwidth has long been the limit for decode.
const MAX_PROBE_THREADS = 8;
// A packed Q4_0 matrix of this size: past the last-level cache of the machines we run on,
// as model weights are.
const PROBE_BYTES = 96 << 20;
const PROBE_SECONDS = 0.5;
// More threads must beat fewer by this much (on the product of decode and prefill speed) to
// be the default: an extra thread also takes a core from Node and the rest of the machine.
const MIN_GAIN = 1.05;

export interface ThreadProfile {
  measuredAt: string;
  threads: number;
  scaling: ThreadScaling[];
}

// The thread count with the best decode x prefill speed, preferring fewer within MIN_GAIN.
export function pickThreads(scaling: readonly ThreadScaling[]): number {
  const score = (s: ThreadScaling) => s.decodeBytesPerSecond * s.prefillMacsPerSecond;
  let best = scaling[0];
  if (!best) return 1;
  for (const s of scaling) if (score(s) > score(best) * MIN_GAIN) best = s;
  return best.threads;
}

export async function measureThreads(backend: ThreadProbe, maxThreads = Math.min(availableParallelism(), MAX_PROBE_THREADS)): Promise<ThreadProfile> {
  const scaling = await backend.threadScaling(maxThreads, PROBE_BYTES, PROBE_SECONDS);
  return { measuredAt: new Date().toISOString(), threads: pickThreads(scaling), scaling };
}

// The default for LoadOptions.threads: cached per CPU model and count.
export async function defaultThreads(backend: ThreadProbe, options: { refresh?: boolean } = {}): Promise<number> {
  const key = `threads|${cpus()[0]?.model ?? "cpu"}|${availableParallelism()}`;
  const p = await cachedProfileEntry<ThreadProfile>(key, () => measureThreads(backend), options.refresh ?? false);
  return Number.isInteger(p.threads) && p.threads >= 1 ? p.threads : 1;
}
