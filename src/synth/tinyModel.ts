// A tiny model (2 layers, dim 64) for unit tests, in llama, mistral3 (llama's layout under
// its own name), qwen2 (q/k/v biases), qwen3 (per-head q/k norms) or phi3 (fused attn_qkv and
// gate+up in ffn_up) layout, or a wider one in gemma2 / gemma3 layout (post-norms, GeGLU, a
// sliding window of a few positions so short prompts cross it, soft-capping, gemma3's local
// rope base and linear rope scaling), or a mixture of experts (llama with experts as Mixtral,
// qwen3moe, qwen2moe with its shared expert), with a small byte-level BPE vocab and a ChatML
// template.
// Float weights are drawn from a seeded PRNG and quantised with the reference quantisers,
// and returned so tests can compare a forward pass against them.
import { ActiveflowError } from "../errors.js";
import { GgmlType, typeName } from "../gguf/types.js";
import { GgufWriter, f32, str, u32, type GgufWriteValue } from "../gguf/writer.js";
import { quantize } from "./quantize.js";
import { fileTypeOf, Rng } from "./synth.js";
import { buildVocab, tokenizerMetadata } from "./vocab.js";

export type TinyArch = "llama" | "mistral3" | "qwen2" | "qwen3" | "qwen2moe" | "qwen3moe" | "phi3" | "gemma2" | "gemma3";

// Sizes that may differ from the tiny default (dims multiples of 32 for the block types).
export interface TinyShape {
  dim: number;
  layers: number;
  ffn: number;
  heads: number;
  kvHeads: number;
  // Defaults to dim / heads.
  headDim?: number;
  vocab: number;
  ropeTheta: number;
}
const TINY_SHAPE: TinyShape = { dim: 64, layers: 2, ffn: 128, heads: 4, kvHeads: 2, vocab: 300, ropeTheta: 10000 };

export interface TinyModelOptions {
  // Defaults to "llama".
  arch?: TinyArch;
  // Type of the linear weights (F32, F16, Q4_0, Q4_1, Q8_0). Defaults to F32.
  type?: number;
  // Type of token_embd (and output.weight). Defaults to `type`.
  embdType?: number;
  // Leave out output.weight so the head reuses token_embd (as SmolLM2 does). Defaults to
  // false, but gemma2 is always tied (llama.cpp refuses a gemma2 file with a head).
  tied?: boolean;
  // gemma2 / gemma3: attention.sliding_window in positions. Defaults to 8.
  slidingWindow?: number;
  // Defaults to 1.
  seed?: number;
  // tokenizer.ggml.pre. Defaults to "default" for llama and gemma, "qwen2" for qwen2/qwen3.
  pre?: string;
  // tokenizer.ggml.add_bos_token. Defaults to false.
  addBos?: boolean;
  // Defaults to 256.
  contextLength?: number;
  // Defaults to dim 64, 2 layers, ffn 128, 4 heads, 2 kv heads, vocab 300, rope theta 10000.
  shape?: Partial<TinyShape>;
  // phi3 only: LongRoPE factors (short in [1, 1.2), long in [1, 21), as Phi-3-mini-128k's run
  // from about 1 to 1.2 and 1 to 60) with these keys. Defaults to none.
  longRope?: { originalContext: number; attnFactor: number };
  // Linear rope scaling by this factor (rope.scaling.factor; with `typed`, also
  // rope.scaling.type "linear", else the type is left to its default). Defaults to none.
  ropeLinear?: { factor: number; typed: boolean };
  // Mixture of experts: `count` experts of width `ffn`, `used` per token (qwen2moe adds a
  // shared expert of width 2 * ffn). Required for qwen2moe/qwen3moe; a llama with experts is
  // Mixtral's layout. Defaults to none.
  experts?: TinyExperts;
}

export interface TinyExperts {
  count: number;
  used: number;
  ffn: number;
}

export interface TinyConfig {
  arch: TinyArch;
  dim: number;
  layers: number;
  ffn: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  vocab: number;
  contextLength: number;
  ropeTheta: number;
  normEps: number;
  bosId: number;
  eosId: number;
  eotId: number;
  // gemma2 / gemma3 only (undefined elsewhere).
  slidingWindow?: number;
  experts: TinyExperts | undefined;
}

// Wider for Gemma: q_dim (heads x headDim) differs from dim as in the real models, and gemma3
// needs 6 layers for its one global layer in six.
const ARCH_SHAPES: Partial<Record<TinyArch, Partial<TinyShape>>> = {
  gemma2: { dim: 128, layers: 4, ffn: 256, heads: 4, kvHeads: 2, headDim: 48 },
  gemma3: { dim: 128, layers: 6, ffn: 256, heads: 4, kvHeads: 2, headDim: 48, ropeTheta: 1e6 },
};
// Soft-caps low enough to bite on a tiny model's scores and logits (Gemma 2's real 50 / 30
// would leave them all but linear here).
const TINY_GEMMA2_ATTN_SOFTCAP = 3;
const TINY_GEMMA2_FINAL_SOFTCAP = 4;
// Gemma 3's global layers: rope base 1e6 (ARCH_SHAPES) and linear scaling by 8, as its 4B+
// models; its local layers keep llama.cpp's default base (no rope.freq_base_swa key).
const TINY_GEMMA3_ROPE_FACTOR = 8;

export interface TinyModel {
  path: string;
  config: TinyConfig;
  tokens: string[];
  merges: string[];
  // Each tensor's float values before quantisation, GGML order (dims[0] contiguous).
  weights: Map<string, { dims: number[]; type: number; values: Float32Array }>;
}

const MERGES = [
  "Ġ t", "Ġ a", "h e", "i n", "r e", "o n", "Ġt he", "e r", "Ġ s", "a t", "e n", "Ġ o", "Ġ w",
  "o r", "l l", "Ġ c", "i s", "e s", "Ġ b", "a n", "Ġ f", "Ġ m", "Ġ h", "i t", "Ġ p", "o u",
  "e d", "Ġ d", "a r", "H e", "ll o", "He llo", "l d", "Ġw or", "Ġwor ld",
];
const SPECIALS = ["<|im_start|>", "<|im_end|>", "<s>", "</s>"];
export const TINY_VOCAB_SIZE = TINY_SHAPE.vocab;
// phi3 files carry attention.sliding_window (Phi-3-mini-4k: 2047); llama.cpp ignores it for
// phi3, so the tiny file sets one shorter than test prompts to show the engine does too.
export const TINY_PHI3_SLIDING_WINDOW = 8;

export const CHATML_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}" +
  "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const TINY_TYPES: readonly number[] = [GgmlType.F32, GgmlType.F16, GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q8_0];

export async function buildTinyModel(outPath: string, options: TinyModelOptions = {}): Promise<TinyModel> {
  const arch = options.arch ?? "llama";
  const type = options.type ?? GgmlType.F32;
  const embdType = options.embdType ?? type;
  for (const t of [type, embdType]) {
    if (!TINY_TYPES.includes(t)) {
      throw new ActiveflowError("BAD_ARGUMENT", `tiny model: type ${typeName(t)} is not supported, expected one of ${TINY_TYPES.map(typeName).join(", ")}`);
    }
  }
  const experts = options.experts;
  const moeArch = arch === "qwen2moe" || arch === "qwen3moe";
  if (moeArch !== (experts !== undefined) && arch !== "llama") {
    throw new ActiveflowError("BAD_ARGUMENT", `tiny model: experts are ${moeArch ? "required" : "not supported"} for ${arch}`);
  }
  const shape = { ...TINY_SHAPE, ...ARCH_SHAPES[arch], ...options.shape };
  const gemma = arch === "gemma2" || arch === "gemma3";
  // llama.cpp looks up Phi-3's <unk> and <|endoftext|> by text when a model's name says phi3.
  const vocab = buildVocab(MERGES, arch === "phi3" ? [...SPECIALS, "<unk>", "<|endoftext|>"] : SPECIALS, shape.vocab);
  const cfg: TinyConfig = {
    arch, dim: shape.dim, layers: shape.layers, ffn: shape.ffn, heads: shape.heads, kvHeads: shape.kvHeads,
    headDim: shape.headDim ?? shape.dim / shape.heads, vocab: vocab.tokens.length,
    contextLength: options.contextLength ?? 256, ropeTheta: shape.ropeTheta, normEps: 1e-5,
    bosId: vocab.special.get("<s>")!, eosId: vocab.special.get("</s>")!, eotId: vocab.special.get("<|im_end|>")!,
    ...(gemma ? { slidingWindow: options.slidingWindow ?? 8 } : {}),
    experts,
  };
  const qkNorm = arch === "qwen3" || arch === "qwen3moe" || arch === "gemma3";
  const qkvBias = arch === "qwen2" || arch === "qwen2moe";
  const tied = arch === "gemma2" || (options.tied ?? false);
  const kvDim = cfg.kvHeads * cfg.headDim;

  const w = new GgufWriter(outPath);
  const a = (k: string): string => `${arch}.${k}`;
  const meta: [string, GgufWriteValue][] = [
    ["general.architecture", str(arch)],
    ["general.name", str(`activeflow-tiny-${arch}`)],
    ["general.file_type", u32(fileTypeOf(type))],
    ["general.quantization_version", u32(2)],
    [a("block_count"), u32(cfg.layers)],
    [a("context_length"), u32(cfg.contextLength)],
    [a("embedding_length"), u32(cfg.dim)],
    [a("feed_forward_length"), u32(arch === "llama" && experts ? experts.ffn : cfg.ffn)],
    [a("attention.head_count"), u32(cfg.heads)],
    [a("attention.head_count_kv"), u32(cfg.kvHeads)],
    [a("rope.freq_base"), f32(cfg.ropeTheta)],
    [a("attention.layer_norm_rms_epsilon"), f32(cfg.normEps)],
  ];
  const llamaLike = arch === "llama" || arch === "mistral3";
  if (llamaLike) meta.push([a("rope.dimension_count"), u32(cfg.headDim)], [a("vocab_size"), u32(cfg.vocab)]);
  if (arch === "phi3") meta.push([a("rope.dimension_count"), u32(cfg.headDim)], [a("attention.sliding_window"), u32(TINY_PHI3_SLIDING_WINDOW)]);
  if (options.longRope && arch !== "phi3") throw new ActiveflowError("BAD_ARGUMENT", `tiny model: LongRoPE factors are for phi3, not ${arch}`);
  if (options.ropeLinear) {
    meta.push([a("rope.scaling.factor"), f32(options.ropeLinear.factor)]);
    if (options.ropeLinear.typed) meta.push([a("rope.scaling.type"), str("linear")]);
  }
  if (options.longRope) {
    meta.push([a("rope.scaling.original_context_length"), u32(options.longRope.originalContext)], [a("rope.scaling.attn_factor"), f32(options.longRope.attnFactor)]);
  }
  if (arch === "qwen3" || arch === "qwen3moe" || gemma) meta.push([a("attention.key_length"), u32(cfg.headDim)], [a("attention.value_length"), u32(cfg.headDim)]);
  if (experts) meta.push([a("expert_count"), u32(experts.count)], [a("expert_used_count"), u32(experts.used)]);
  if (experts && moeArch) meta.push([a("expert_feed_forward_length"), u32(experts.ffn)]);
  if (experts && arch === "qwen2moe") meta.push([a("expert_shared_feed_forward_length"), u32(2 * experts.ffn)]);
  if (gemma) meta.push([a("attention.sliding_window"), u32(cfg.slidingWindow!)]);
  if (arch === "gemma2") meta.push([a("attn_logit_softcapping"), f32(TINY_GEMMA2_ATTN_SOFTCAP)], [a("final_logit_softcapping"), f32(TINY_GEMMA2_FINAL_SOFTCAP)]);
  if (arch === "gemma3") meta.push([a("rope.scaling.type"), str("linear")], [a("rope.scaling.factor"), f32(TINY_GEMMA3_ROPE_FACTOR)]);
  meta.push(...tokenizerMetadata(vocab, {
    pre: options.pre ?? (arch.startsWith("qwen") ? "qwen2" : "default"),
    bos: cfg.bosId, eos: cfg.eosId, eot: cfg.eotId, addBos: options.addBos ?? false, chatTemplate: CHATML_TEMPLATE,
  }));
  for (const [k, v] of meta) w.set(k, v);

  // [name, dims, type, kind]: kind picks how the floats are drawn.
  type Kind = "linear" | "norm" | "bias" | "router" | "ropeShort" | "ropeLong";
  const specs: [string, number[], number, Kind][] = [["token_embd.weight", [cfg.dim, cfg.vocab], embdType, "linear"]];
  for (let l = 0; l < cfg.layers; l++) {
    const p = `blk.${l}.`;
    specs.push([`${p}attn_norm.weight`, [cfg.dim], GgmlType.F32, "norm"]);
    if (arch === "phi3") {
      specs.push([`${p}attn_qkv.weight`, [cfg.dim, cfg.heads * cfg.headDim + 2 * kvDim], type, "linear"]);
    } else {
      specs.push(
        [`${p}attn_q.weight`, [cfg.dim, cfg.heads * cfg.headDim], type, "linear"],
        [`${p}attn_k.weight`, [cfg.dim, kvDim], type, "linear"],
        [`${p}attn_v.weight`, [cfg.dim, kvDim], type, "linear"],
      );
    }
    if (qkvBias) {
      specs.push(
        [`${p}attn_q.bias`, [cfg.heads * cfg.headDim], GgmlType.F32, "bias"],
        [`${p}attn_k.bias`, [kvDim], GgmlType.F32, "bias"],
        [`${p}attn_v.bias`, [kvDim], GgmlType.F32, "bias"],
      );
    }
    if (qkNorm) {
      specs.push(
        [`${p}attn_q_norm.weight`, [cfg.headDim], GgmlType.F32, "norm"],
        [`${p}attn_k_norm.weight`, [cfg.headDim], GgmlType.F32, "norm"],
      );
    }
    specs.push(
      [`${p}attn_output.weight`, [cfg.heads * cfg.headDim, cfg.dim], type, "linear"],
    );
    if (gemma) specs.push([`${p}post_attention_norm.weight`, [cfg.dim], GgmlType.F32, "norm"]);
    specs.push([`${p}ffn_norm.weight`, [cfg.dim], GgmlType.F32, "norm"]);
    if (experts) {
      // Routers stay F32, as llama.cpp's quantizer keeps them.
      const x = experts;
      specs.push(
        [`${p}ffn_gate_inp.weight`, [cfg.dim, x.count], GgmlType.F32, "router"],
        [`${p}ffn_gate_exps.weight`, [cfg.dim, x.ffn, x.count], type, "linear"],
        [`${p}ffn_up_exps.weight`, [cfg.dim, x.ffn, x.count], type, "linear"],
        [`${p}ffn_down_exps.weight`, [x.ffn, cfg.dim, x.count], type, "linear"],
      );
      if (arch === "qwen2moe") {
        specs.push(
          [`${p}ffn_gate_inp_shexp.weight`, [cfg.dim], GgmlType.F32, "router"],
          [`${p}ffn_gate_shexp.weight`, [cfg.dim, 2 * x.ffn], type, "linear"],
          [`${p}ffn_up_shexp.weight`, [cfg.dim, 2 * x.ffn], type, "linear"],
          [`${p}ffn_down_shexp.weight`, [2 * x.ffn, cfg.dim], type, "linear"],
        );
      }
    } else {
      // phi3: one ffn_up of 2 ffn rows, the gate's first.
      if (arch === "phi3") specs.push([`${p}ffn_up.weight`, [cfg.dim, 2 * cfg.ffn], type, "linear"]);
      else specs.push([`${p}ffn_gate.weight`, [cfg.dim, cfg.ffn], type, "linear"], [`${p}ffn_up.weight`, [cfg.dim, cfg.ffn], type, "linear"]);
      specs.push([`${p}ffn_down.weight`, [cfg.ffn, cfg.dim], type, "linear"]);
    }
    if (gemma) specs.push([`${p}post_ffw_norm.weight`, [cfg.dim], GgmlType.F32, "norm"]);
  }
  specs.push(["output_norm.weight", [cfg.dim], GgmlType.F32, "norm"]);
  if (!tied) specs.push(["output.weight", [cfg.dim, cfg.vocab], embdType, "linear"]);
  if (options.longRope) {
    specs.push(["rope_factors_long.weight", [cfg.headDim / 2], GgmlType.F32, "ropeLong"], ["rope_factors_short.weight", [cfg.headDim / 2], GgmlType.F32, "ropeShort"]);
  }

  const seed = options.seed ?? 1;
  const weights: TinyModel["weights"] = new Map();
  for (const [i, [name, dims, t, kind]] of specs.entries()) {
    const n = dims.reduce((x, y) => x * y, 1);
    const values = uniform(new Rng(seed, i), n);
    // Linear: std 1/sqrt(n_in); norms: 1 +- 0.25 so the scale is exercised; biases: +-0.1;
    // rope factors (frequency divisors): short 1.1 +- 0.1, long 11 +- 10.
    const [base, s] = kind === "linear" || kind === "router" ? [0, Math.sqrt(3 / dims[0]!)] : kind === "norm" ? [1, 0.25]
      : kind === "ropeShort" ? [1.1, 0.1] : kind === "ropeLong" ? [11, 10] : [0, 0.1];
    for (let j = 0; j < n; j++) values[j] = base + values[j]! * s;
    weights.set(name, { dims, type: t, values });
    w.addTensor({ name, dims, type: t });
  }
  await w.write((t) => quantize(t.type, weights.get(t.name)!.values));
  return { path: outPath, config: cfg, tokens: vocab.tokens, merges: vocab.merges, weights };
}

// n floats uniform in [-1, 1).
function uniform(rng: Rng, n: number): Float32Array {
  const words = new Uint32Array(n);
  rng.fill(words);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = words[i]! / 2 ** 31 - 1;
  return out;
}
