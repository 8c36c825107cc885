// What calibration, sensitivity probes, level quality and channel activity need of a loaded
// model: the engine (src/engine/Engine.ts) satisfies it structurally. Declared here so
// sparsity/ does not import engine/, which imports sparsity/ (issue 11 item 4).
import type { ActivationCounts, SiteHistograms, WeightStatistics } from "../backend/Backend.js";
import type { FlashModel } from "../flash/open.js";
import type { ModelConfig } from "../model/config.js";
import type { Tokenizer } from "../tokenizer/types.js";

// The few generation options calibration text is written with.
export interface TargetGenerateOptions {
  maxTokens: number;
  temperature: number;
  topK: number;
  seed: number;
  stopAtEos: boolean;
  signal?: AbortSignal;
}

export interface SparsityTarget {
  readonly path: string;
  readonly config: ModelConfig;
  readonly tokenizer: Tokenizer;
  readonly contextLength: number;
  // Bytes of the model file (a calibration checkpoint's key).
  readonly modelBytes: number;
  // Flash mode: the converted model's extents; undefined for a plain GGUF.
  readonly flash: Pick<FlashModel, "extents"> | undefined;
  // Weight-aware calibration computes the column norms with it.
  readonly backend: WeightStatistics;
  // Teacher forcing: logits after each prefix of `ids` (one Float32Array(nVocab) per position).
  evaluateLogits(ids: readonly number[], signal?: AbortSignal): Promise<Float32Array[]>;
  generate(prompt: readonly number[], options: TargetGenerateOptions): AsyncGenerator<{ id: number }, unknown, void>;
  setThresholds(thresholds: Float32Array | null): void;
  setColumnNorms(norms: Float32Array | null): void;
  setCapture(on: boolean, clear?: boolean): void;
  histograms(): SiteHistograms;
  setActivationCapture(counts: boolean, trace: boolean, clear?: boolean): void;
  activationCounts(reset?: boolean): ActivationCounts;
}
