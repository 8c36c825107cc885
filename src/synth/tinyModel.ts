// A tiny model (2 layers, dim 64) for unit tests, in llama, qwen2 (q/k/v biases) or qwen3
// (per-head q/k norms) layout, or a mixture of experts (llama with experts as Mixtral,
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

export type TinyArch = "llama" | "qwen2" | "qwen3" | "qwen2moe" | "qwen3moe";

export interface TinyModelOptions {
  // Defaults to "llama".
  arch?: TinyArch;
  // Type of the linear weights (F32, F16, Q4_0, Q4_1, Q8_0). Defaults to F32.
  type?: number;
  // Type of token_embd (and output.weight). Defaults to `type`.
  embdType?: number;
  // Leave out output.weight so the head reuses token_embd (as SmolLM2 does). Defaults to false.
  tied?: boolean;
  // Defaults to 1.
  seed?: number;
  // tokenizer.ggml.pre. Defaults to "default" for llama and "qwen2" for qwen2/qwen3.
  pre?: string;
  // tokenizer.ggml.add_bos_token. Defaults to false.
  addBos?: boolean;
  // Defaults to 256.
  contextLength?: number;
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
  experts: TinyExperts | undefined;
}

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
export const TINY_VOCAB_SIZE = 300;

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
  const vocab = buildVocab(MERGES, SPECIALS, TINY_VOCAB_SIZE);
  const cfg: TinyConfig = {
    arch, dim: 64, layers: 2, ffn: 128, heads: 4, kvHeads: 2, headDim: 16, vocab: vocab.tokens.length,
    contextLength: options.contextLength ?? 256, ropeTheta: 10000, normEps: 1e-5,
    bosId: vocab.special.get("<s>")!, eosId: vocab.special.get("</s>")!, eotId: vocab.special.get("<|im_end|>")!,
    experts,
  };
  const qkNorm = arch === "qwen3" || arch === "qwen3moe";
  const qkvBias = arch === "qwen2" || arch === "qwen2moe";
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
  if (arch === "llama") meta.push([a("rope.dimension_count"), u32(cfg.headDim)], [a("vocab_size"), u32(cfg.vocab)]);
  if (qkNorm) meta.push([a("attention.key_length"), u32(cfg.headDim)], [a("attention.value_length"), u32(cfg.headDim)]);
  if (experts) meta.push([a("expert_count"), u32(experts.count)], [a("expert_used_count"), u32(experts.used)]);
  if (experts && moeArch) meta.push([a("expert_feed_forward_length"), u32(experts.ffn)]);
  if (experts && arch === "qwen2moe") meta.push([a("expert_shared_feed_forward_length"), u32(2 * experts.ffn)]);
  meta.push(...tokenizerMetadata(vocab, {
    pre: options.pre ?? (arch === "llama" ? "default" : "qwen2"),
    bos: cfg.bosId, eos: cfg.eosId, eot: cfg.eotId, addBos: options.addBos ?? false, chatTemplate: CHATML_TEMPLATE,
  }));
  for (const [k, v] of meta) w.set(k, v);

  // [name, dims, type, kind]: kind picks how the floats are drawn.
  type Kind = "linear" | "norm" | "bias" | "router";
  const specs: [string, number[], number, Kind][] = [["token_embd.weight", [cfg.dim, cfg.vocab], embdType, "linear"]];
  for (let l = 0; l < cfg.layers; l++) {
    const p = `blk.${l}.`;
    specs.push(
      [`${p}attn_norm.weight`, [cfg.dim], GgmlType.F32, "norm"],
      [`${p}attn_q.weight`, [cfg.dim, cfg.heads * cfg.headDim], type, "linear"],
      [`${p}attn_k.weight`, [cfg.dim, kvDim], type, "linear"],
      [`${p}attn_v.weight`, [cfg.dim, kvDim], type, "linear"],
    );
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
      [`${p}ffn_norm.weight`, [cfg.dim], GgmlType.F32, "norm"],
    );
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
      specs.push(
        [`${p}ffn_gate.weight`, [cfg.dim, cfg.ffn], type, "linear"],
        [`${p}ffn_up.weight`, [cfg.dim, cfg.ffn], type, "linear"],
        [`${p}ffn_down.weight`, [cfg.ffn, cfg.dim], type, "linear"],
      );
    }
  }
  specs.push(["output_norm.weight", [cfg.dim], GgmlType.F32, "norm"]);
  if (!options.tied) specs.push(["output.weight", [cfg.dim, cfg.vocab], embdType, "linear"]);

  const seed = options.seed ?? 1;
  const weights: TinyModel["weights"] = new Map();
  for (const [i, [name, dims, t, kind]] of specs.entries()) {
    const n = dims.reduce((x, y) => x * y, 1);
    const values = uniform(new Rng(seed, i), n);
    // Linear and routers: std 1/sqrt(n_in); norms: 1 +- 0.25 so the scale is exercised; biases: +-0.1.
    const s = kind === "linear" || kind === "router" ? Math.sqrt(3 / dims[0]!) : kind === "norm" ? 0.25 : 0.1;
    for (let j = 0; j < n; j++) values[j] = (kind === "norm" ? 1 : 0) + values[j]! * s;
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
