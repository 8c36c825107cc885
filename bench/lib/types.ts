// Messages between bench/dense.ts and the per-measurement child process (bench/lib/worker.ts).

export type EngineName = "ours" | "llamacpp";

export interface WorkerRequest {
  engine: EngineName;
  modelPath: string;
  threads: number;
  // Prompt token ids evaluated as the prefill measurement (fixed ids, not text).
  promptIds: number[];
  // Greedy tokens generated after the prompt; decode speed excludes the first (prefill) one.
  decodeTokens: number;
  // KV cache length for both engines.
  contextLength: number;
}

export interface WorkerResult {
  engine: EngineName;
  threads: number;
  promptTokens: number;
  generatedTokens: number;
  loadSeconds: number;
  // Prompt tokens / wall time from the generate call to the first generated token.
  prefillTokensPerSecond: number;
  // (generated - 1) / wall time from the first to the last generated token.
  decodeTokensPerSecond: number;
  // Kernel path our engine chose (e.g. "avx512"); llama.cpp's system info line for llama.cpp.
  isa: string;
  peakRssBytes: number;
  // The engine's own stats, when it reports them (ours), for cross-checking the wall times.
  engineStats?: unknown;
}

// The worker prints exactly one line starting with this marker, followed by the JSON result,
// so engine log lines on stdout cannot be mistaken for it.
export const RESULT_MARKER = "ACTIVEFLOW_BENCH_RESULT ";
