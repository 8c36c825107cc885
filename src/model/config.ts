// Model hyper-parameters read from GGUF metadata, checked once, in the units the backend uses.
import { ActiveflowError } from "../errors.js";
import type { GgufFile } from "../gguf/types.js";
import { readGemmaConfig } from "./gemma.js";
import { num, positive } from "./metadataNumbers.js";
import { readMoeConfig, type MoeConfig } from "./moe.js";

export type Architecture = "llama" | "mistral3" | "qwen2" | "qwen3" | "qwen2moe" | "qwen3moe" | "phi3" | "gemma2" | "gemma3";
const ARCHITECTURES: readonly Architecture[] = ["llama", "mistral3", "qwen2", "qwen3", "qwen2moe", "qwen3moe", "phi3", "gemma2", "gemma3"];
// Architectures llama.cpp rotates GPT-J style (LLAMA_ROPE_TYPE_NORM in llama_model_rope_type);
// its other architectures here rotate NeoX style.
const NORM_ROPE: ReadonlySet<Architecture> = new Set(["llama", "mistral3"]);

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
  // llama.cpp rotates NeoX-style (i, i + d/2) for qwen2/qwen3/phi3 and GPT-J-style (2i, 2i+1)
  // for llama and mistral3, whose converter permutes q/k rows to match.
  ropeNeox: boolean;
  // Multiplies rope's cos and sin (rope.scaling.attn_factor, as llama.cpp reads it for every
  // architecture; phi3 LongRoPE files set it). Defaults to 1.
  ropeAttnFactor: number;
  // The context phi3's LongRoPE short factors serve; a longer context takes the long ones.
  ropeOriginalContext: number;
  trainedContext: number;
  // Gemma 2 / 3 (src/model/gemma.ts); the neutral values below for the other architectures.
  embdScale: number; // token embeddings are multiplied by this
  // 0: scores scaled by 1/sqrt(headDim) after q.k; else q is multiplied by it before
  attnScale: number;
  attnSoftcap: number; // 0 = none; else each score s becomes cap * tanh(s / cap)
  finalSoftcap: number; // 0 = none; the same on the logits
  ffnGelu: boolean; // GeGLU (gelu(gate) * up) instead of SwiGLU
  postNorms: boolean; // RMSNorm of the attention and FFN outputs (post_attention_norm, post_ffw_norm)
  // 0 = none; else a query on a layer of swaLayers sees only the last slidingWindow positions
  slidingWindow: number;
  swaLayers: boolean[]; // [nLayer]
  ropeThetaSwa: number; // rope base of the sliding-window layers
  ropeScale: number; // position multiplier of the other layers (1 / linear scaling factor)
  ropeScaleSwa: number;
  // Mixture of experts (src/model/moe.ts); undefined for a dense FFN.
  moe: MoeConfig | undefined;
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
  const gemma = arch === "gemma2" || arch === "gemma3";
  // Gemma reads its own scaling (gemma.ts); phi3's LongRoPE factors are tensors (longRope.ts),
  // older files name the type as well.
  if (!gemma && typeof scaling === "string" && scaling !== "none" && scaling !== "linear" && scaling !== "llama3" && !(arch === "phi3" && scaling === "longrope")) {
    throw new ActiveflowError("MODEL_UNSUPPORTED", `${file.path}: rope scaling "${scaling}" is not supported`);
  }
  checkArchExtras(file, arch);
  const nLayer = positive(file, k("block_count"), num(file, k("block_count")));
  const ropeTheta = num(file, k("rope.freq_base"), 10000);
  const trainedContext = num(file, k("context_length"), 2048);
  const ffKey = file.metadata.get(k("feed_forward_length"));
  const moe = readMoeConfig(file, arch, ffKey === undefined ? undefined : num(file, k("feed_forward_length")));
  const base = {
    arch,
    nLayer,
    nEmbd,
    nFf: moe ? positive(file, k("expert_feed_forward_length"), moe.nFfExp) : positive(file, k("feed_forward_length"), num(file, k("feed_forward_length"))),
    nHead,
    nHeadKv,
    headDim,
    nVocab: positive(file, "vocab size", nVocab),
    nRot: positive(file, k("rope.dimension_count"), num(file, k("rope.dimension_count"), headDim)),
    ropeTheta,
    rmsEps: num(file, k("attention.layer_norm_rms_epsilon"), 1e-5),
    ropeNeox: !NORM_ROPE.has(arch),
    ropeAttnFactor: num(file, k("rope.scaling.attn_factor"), 1),
    ropeOriginalContext: num(file, k("rope.scaling.original_context_length"), trainedContext),
    trainedContext,
    moe,
  };
  if (arch === "gemma2" || arch === "gemma3") return { ...base, ...readGemmaConfig(file, arch, { nLayer, nEmbd, nHead, headDim, nRot: base.nRot, ropeTheta }) };
  return {
    ...base,
    embdScale: 1, attnScale: 0, attnSoftcap: 0, finalSoftcap: 0, ffnGelu: false, postNorms: false,
    slidingWindow: 0, swaLayers: new Array<boolean>(nLayer).fill(false), ropeThetaSwa: ropeTheta, ropeScale: linearRopeScale(file, k), ropeScaleSwa: 1,
  };
}

// Features llama.cpp applies for these architectures that the engine does not compute: refused
// by name rather than run wrong. (phi3's sliding_window is not among them: llama.cpp turns
// SWA off for phi3 and attends to the whole context, as the engine does.)
function checkArchExtras(file: GgufFile, arch: Architecture): void {
  const refuse = (what: string): never => {
    throw new ActiveflowError("MODEL_UNSUPPORTED", `${file.path}: ${what} is not supported`);
  };
  if (arch === "phi3" && file.tensors.some((t) => /^blk\.\d+\.attn_qkv\.bias$/.test(t.name))) refuse("tensor attn_qkv.bias");
  // Only q/k/v biases are applied; llama.cpp also adds these when a file has them.
  const bias = file.tensors.find((t) => /^blk\.\d+\.(attn_output|ffn_gate|ffn_up|ffn_down)\.bias$/.test(t.name));
  if (bias) refuse(`tensor ${bias.name}`);
  // LongRoPE factors on other architectures come with rope scaling type "longrope", refused above.
  if (arch === "mistral3") {
    // Llama 4 style attention temperature (Ministral 3): q scaled by position.
    const temp = file.metadata.get("mistral3.attention.temperature_scale");
    if (temp !== undefined && temp !== 0) refuse(`mistral3.attention.temperature_scale = ${String(temp)}`);
  }
}

// Linear rope scaling as llama.cpp reads it for these architectures: the position multiplier is
// 1 / rope.scaling.factor (or the older rope.scale_linear) when the type is linear or absent;
// Llama 3's and LongRoPE's factors come as tensors instead.
function linearRopeScale(file: GgufFile, k: (s: string) => string): number {
  const type = file.metadata.get(k("rope.scaling.type"));
  if (type !== undefined && type !== "linear") return 1;
  const factor = num(file, k("rope.scaling.factor"), num(file, k("rope.scale_linear"), 0));
  if (!(factor >= 0) || !Number.isFinite(factor)) {
    throw new ActiveflowError("GGUF_BAD_VALUE", `${file.path}: rope scaling factor ${factor} is not a finite non-negative number`);
  }
  return factor === 0 ? 1 : Math.fround(1 / Math.fround(factor));
}
