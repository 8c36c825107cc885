// The line between the platform-free core and a compute backend (native addon now,
// WebAssembly later). The core decides; the backend computes and owns the weight bytes.
import type { ModelConfig } from "../model/config.js";

export interface BackendTensor {
  name: string;
  type: number;
  dims: number[];
  // Absolute offset of the tensor's bytes in the model file.
  offset: number;
}

export interface BackendModelSpec {
  path: string;
  config: ModelConfig & { nCtx: number; nBatch: number };
  tensors: BackendTensor[];
  threads: number;
}

export interface BackendModelInfo {
  fileBytes: number;
  kvBytes: number;
  threads: number;
  isa: string;
}

export interface BackendModel {
  // Evaluates tokens at positions [pos, pos + n) and writes the last token's logits
  // ([nVocab]) or, with allLogits, every token's ([n][nVocab]) into `logits`.
  eval(tokens: Int32Array, pos: number, logits: Float32Array, allLogits: boolean): Promise<void>;
  // Makes a running eval reject with code ABORTED at its next layer boundary.
  abort(): void;
  setThreads(threads: number): void;
  info(): BackendModelInfo;
  dispose(): void;
}

export interface Backend {
  readonly name: string;
  loadModel(spec: BackendModelSpec): Promise<BackendModel>;
}
