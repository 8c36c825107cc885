import type { ChatMessage } from "../tokenizer/types.js";

export interface SamplingOptions {
  // 0 or greedy=true picks the argmax. Defaults to 0.8.
  temperature?: number;
  greedy?: boolean;
  // Keep the k most likely tokens; 0 disables. Defaults to 40.
  topK?: number;
  // Nucleus sampling mass; 1 disables. Defaults to 0.95.
  topP?: number;
  // Drop tokens below minP * p(max); 0 disables. Defaults to 0.05.
  minP?: number;
  // Penalise tokens seen in the last repeatLastN tokens; 1 disables. Defaults to 1.
  repeatPenalty?: number;
  // Defaults to 64.
  repeatLastN?: number;
  // Same seed, same tokens. Defaults to a random seed.
  seed?: number;
}

export interface GenerateOptions extends SamplingOptions {
  // Tokens to generate at most. Defaults to 128.
  maxTokens?: number;
  signal?: AbortSignal;
  // Stop at the model's end-of-generation tokens. Defaults to true.
  stopAtEos?: boolean;
  // Prepend BOS when the model asks for it. Defaults to true for generate(), as llama.cpp.
  addSpecial?: boolean;
}

export interface GeneratedToken {
  id: number;
  // Text this token completes (may be "" while a UTF-8 sequence is incomplete).
  text: string;
}

export interface GenerationStats {
  promptTokens: number;
  generatedTokens: number;
  prefillSeconds: number;
  decodeSeconds: number;
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
  peakRssBytes: number;
  modelBytes: number;
  threads: number;
  isa: string;
  stopReason: "eos" | "length" | "aborted" | "context";
}

export interface LoadOptions {
  // Compute threads. Defaults to 1 (measured best on 2-vCPU machines; see bench/dense).
  threads?: number;
  // KV cache length in tokens. Defaults to min(4096, the model's trained context).
  contextLength?: number;
  signal?: AbortSignal;
  onProgress?: (fraction: number) => void;
}

export type { ChatMessage };
