// Model hyper-parameters read from GGUF metadata, checked once, in the units the backend uses.
import { ActiveflowError } from "../errors.js";
import type { GgufFile, GgufValue } from "../gguf/types.js";
import { readMoeConfig, type MoeConfig } from "./moe.js";

export type Architecture = "llama" | "qwen2" | "qwen3" | "qwen2moe" | "qwen3moe";
const ARCHITECTURES: readonly Architecture[] = ["llama", "qwen2", "qwen3", "qwen2moe", "qwen3moe"];

export interface ModelConfig {
  arch: Architecture;
  nLayer: number;
  nEmbd: number; // residual width
  nFf: number; // FFN hidden width (of one expert in an MoE model)
  nHead: number;
  nHeadKv: number;
  headDim: number; // per-head width of q, k and v
  nVocab: number;
  nRot: number; // rotated dims per head
  ropeTheta: number;
  rmsEps: number;
  // llama.cpp rotates NeoX-style (i, i + d/2) for qwen2/qwen3 and GPT-J-style (2i, 2i+1)
  // for llama, whose converter permutes q/k rows to match.
  ropeNeox: boolean;
  trainedContext: number;
  // Mixture of experts (src/model/moe.ts); undefined for a dense FFN.
  moe: MoeConfig | undefined;
}

function num(file: GgufFile, key: string, fallback?: number): number {
  const v: GgufValue | undefined = file.metadata.get(key);
  if (v === undefined) {
    if (fallback !== undefined) return fallback;
    throw new ActiveflowError("GGUF_BAD_VALUE", `${file.path}: metadata key ${key} is missing`);
  }
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  throw new ActiveflowError("GGUF_BAD_VALUE", `${file.path}: metadata key ${key} must be a number, found ${typeof v}`);
}

function positive(file: GgufFile, key: string, value: number): number {
  if (!Number.isInteger(value) || value <= 0 || value > 1 << 24) {
    throw new ActiveflowError("GGUF_BAD_VALUE", `${file.path}: metadata ${key} = ${value} is not a sane positive integer`);
  }
  return value;
}

export function readModelConfig(file: GgufFile): ModelConfig {
  const archValue = file.metadata.get("general.architecture");
  if (typeof archValue !== "string") {
    throw new ActiveflowError("GGUF_BAD_VALUE", `${file.path}: metadata general.architecture is missing`);
  }
  if (!(ARCHITECTURES as readonly string[]).includes(archValue)) {
    throw new ActiveflowError(
      "MODEL_UNSUPPORTED",
      `${file.path}: architecture "${archValue}" is not supported (supported: ${ARCHITECTURES.join(", ")})`,
    );
  }
  const arch = archValue as Architecture;
  const k = (s: string) => `${arch}.${s}`;
  const nEmbd = positive(file, k("embedding_length"), num(file, k("embedding_length")));
  const nHead = positive(file, k("attention.head_count"), num(file, k("attention.head_count")));
  const nHeadKv = positive(file, k("attention.head_count_kv"), num(file, k("attention.head_count_kv"), nHead));
  const headDim = positive(file, k("attention.key_length"), num(file, k("attention.key_length"), nEmbd / nHead));
  const valueDim = num(file, k("attention.value_length"), headDim);
  if (valueDim !== headDim) {
    throw new ActiveflowError("MODEL_UNSUPPORTED", `${file.path}: value_length ${valueDim} != key_length ${headDim} is not supported`);
  }
  if (nHead % nHeadKv !== 0) {
    throw new ActiveflowError("GGUF_BAD_VALUE", `${file.path}: head_count ${nHead} is not a multiple of head_count_kv ${nHeadKv}`);
  }
  const embd = file.tensors.find((t) => t.name === "token_embd.weight");
  if (!embd) throw new ActiveflowError("MODEL_MISSING_TENSOR", `${file.path}: model has no tensor token_embd.weight`);
  const tokens = file.metadata.get("tokenizer.ggml.tokens");
  const nVocab = num(file, k("vocab_size"), embd.dims[1] ?? (Array.isArray(tokens) ? tokens.length : 0));
  const scaling = file.metadata.get(k("rope.scaling.type"));
  if (typeof scaling === "string" && scaling !== "none" && scaling !== "llama3") {
    throw new ActiveflowError("MODEL_UNSUPPORTED", `${file.path}: rope scaling "${scaling}" is not supported`);
  }
  const ffKey = file.metadata.get(k("feed_forward_length"));
  const moe = readMoeConfig(file, arch, ffKey === undefined ? undefined : num(file, k("feed_forward_length")));
  return {
    arch,
    nLayer: positive(file, k("block_count"), num(file, k("block_count"))),
    nEmbd,
    nFf: moe ? positive(file, k("expert_feed_forward_length"), moe.nFfExp) : positive(file, k("feed_forward_length"), num(file, k("feed_forward_length"))),
    nHead,
    nHeadKv,
    headDim,
    nVocab: positive(file, "vocab size", nVocab),
    nRot: positive(file, k("rope.dimension_count"), num(file, k("rope.dimension_count"), headDim)),
    ropeTheta: num(file, k("rope.freq_base"), 10000),
    rmsEps: num(file, k("attention.layer_norm_rms_epsilon"), 1e-5),
    ropeNeox: arch !== "llama",
    trainedContext: num(file, k("context_length"), 2048),
    moe,
  };
}
