// Messages between bench/budget.ts and its child process bench/budgetWorker.ts.
import type { FlashRunStats } from "../../src/engine/types.js";

export type BudgetEngine = "ours" | "llamacpp";

// Converts the model to the flash layout once and calibrates it when no table exists, outside
// any memory limit, so that no measured run pays for either.
export interface PrepareRequest {
  op: "prepare";
  modelPath: string;
  // Tokens each calibration prompt is continued by (self-generated text).
  tokensPerPrompt: number;
}

export interface PrepareResult {
  convertedPath: string;
  // The weight bytes a "35%" budget is a percentage of (src/memory/budget.ts weightBytesOf).
  weightBytes: number;
  // "existing <path>" or "new <path> (<source>)".
  calibration: string;
}

export interface RunRequest {
  op: "run";
  engine: BudgetEngine;
  modelPath: string;
  threads: number;
  // Ours only: the dram option (a percentage string or bytes) and the sparsity.
  dram?: string | number;
  sparsity?: number;
  warmupIds: number[];
  warmupTokens: number;
  promptIds: number[];
  // Greedy tokens generated after the prompt; decode speed excludes the first one.
  decodeTokens: number;
  contextLength: number;
  // Sample at this temperature with this seed instead of greedy (bench/moe.ts: greedy decoding
  // of random weights repeats a few tokens, and with them the same experts).
  sample?: { temperature: number; seed: number };
}

// Progress lines, one per event, so that a run the parent kills (wall-time cap, OOM) still
// says how far it got and how fast.
export type BudgetEvent =
  | { ev: "loaded"; loadSeconds: number }
  | { ev: "warm" }
  // First generated token of the measured run: prompt evaluation plus one sample.
  | { ev: "first"; prefillSeconds: number }
  // n tokens generated so far; decodeSeconds since the first one.
  | { ev: "token"; n: number; decodeSeconds: number; flash?: FlashRunStats }
  | { ev: "done"; isa: string; flash?: FlashRunStats }
  // The engine was disposed without error (a crash after "done" is then at process exit).
  | { ev: "disposed" };

export const EVENT_MARKER = "ACTIVEFLOW_BUDGET_EVENT ";
export const PREPARE_MARKER = "ACTIVEFLOW_BUDGET_PREPARED ";
