// Messages between bench/pipeline.ts and its child process bench/lib/pipelineWorker.ts.
import type { BackendFlashStats } from "../../src/backend/Backend.js";
import type { FlashRunStats } from "../../src/engine/types.js";

export interface PipelineRequest {
  // A flash-layout file (.af.gguf) with its calibration beside it: no conversion in a run.
  modelPath: string;
  dram: string;
  sparsity: number;
  threads: number;
  preload: boolean;
  readAhead?: boolean;
  predictMargin?: number;
  cachePolicy?: "lfu" | "prefix";
  readGap?: number;
  promptIds: number[];
  // Decode tokens measured after the first (prefill) token.
  decodeTokens: number;
  contextLength: number;
  // Mixture-of-experts models: pre-gating (the engine's default when absent).
  pregate?: boolean;
  // Sample at this temperature with this seed instead of greedy (budgetTypes.ts says why).
  sample?: { temperature: number; seed: number };
}

// Raw backend counters (cumulative since load) at the first generated token and at the last:
// their difference is the decode part alone, prefill and load excluded.
export type PipelineEvent =
  | { ev: "loaded"; loadSeconds: number }
  | { ev: "first"; prefillSeconds: number }
  | { ev: "token"; n: number; decodeSeconds: number }
  | {
      ev: "done";
      isa: string;
      tokens: number[];
      prefillSeconds: number;
      decodeSeconds: number;
      decodeTokens: number;
      atFirst: BackendFlashStats;
      atLast: BackendFlashStats;
      // The engine's whole-generation stats (prefill included), as `run --json` reports them.
      run: FlashRunStats | undefined;
      peakRssBytes: number;
    };

export const PIPELINE_MARKER = "ACTIVEFLOW_PIPELINE_EVENT ";
