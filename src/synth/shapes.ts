// Llama-architecture shapes (and the Mixtral and Qwen3-MoE mixture-of-experts layouts) for
// random-weight models: real model sizes for speed, I/O and memory measurements (never
// quality), and tiny ones for tests.
import { ActiveflowError } from "../errors.js";
import { TYPE_LAYOUT, typeName } from "../gguf/types.js";

export interface LlamaShape {
  name: string;
  dim: number; // embedding_length
  layers: number; // block_count
  ffn: number; // feed_forward_length
  heads: number; // attention.head_count
  kvHeads: number; // attention.head_count_kv
  vocab: number;
  contextLength: number;
  ropeTheta: number;
  normEps: number;
  // "llama" (the default; with `experts`, Mixtral's layout) or "qwen3moe" (q/k norms, experts).
  arch?: "llama" | "qwen3moe";
  // Per-head width when not dim / heads (Qwen3).
  headDim?: number;
  // Mixture of experts: every layer's FFN is `count` experts of width `ffn`, `used` per token.
  experts?: { count: number; used: number; ffn: number };
}

export const SHAPES = {
  tiny: { name: "tiny", dim: 64, layers: 2, ffn: 128, heads: 4, kvHeads: 2, vocab: 320, contextLength: 256, ropeTheta: 10000, normEps: 1e-5 },
  // Rows of 256 so the K-quants (Q4_K, Q5_K, Q6_K) fit; still tiny (2.5M params).
  small: { name: "small", dim: 256, layers: 2, ffn: 768, heads: 4, kvHeads: 2, vocab: 512, contextLength: 256, ropeTheta: 10000, normEps: 1e-5 },
  // TinyLlama-1.1B.
  "1b": { name: "1b", dim: 2048, layers: 22, ffn: 5632, heads: 32, kvHeads: 4, vocab: 32000, contextLength: 2048, ropeTheta: 10000, normEps: 1e-5 },
  "llama2-7b": { name: "llama2-7b", dim: 4096, layers: 32, ffn: 11008, heads: 32, kvHeads: 32, vocab: 32000, contextLength: 4096, ropeTheta: 10000, normEps: 1e-5 },
  "llama3-8b": { name: "llama3-8b", dim: 4096, layers: 32, ffn: 14336, heads: 32, kvHeads: 8, vocab: 128256, contextLength: 8192, ropeTheta: 500000, normEps: 1e-5 },
  // Mixtral layout (llama with experts), rows of 256 so every type fits.
  "tiny-moe": {
    name: "tiny-moe", dim: 256, layers: 2, ffn: 256, heads: 4, kvHeads: 2, vocab: 512, contextLength: 256, ropeTheta: 10000, normEps: 1e-5,
    experts: { count: 4, used: 2, ffn: 256 },
  },
  // Qwen3-MoE layout, 1.9B parameters of which 0.6B active per token: a mid-size shape for speed runs.
  "moe-2b": {
    name: "moe-2b", arch: "qwen3moe", dim: 2048, layers: 16, ffn: 4096, heads: 16, kvHeads: 4, headDim: 128, vocab: 32000,
    contextLength: 4096, ropeTheta: 1000000, normEps: 1e-6, experts: { count: 16, used: 4, ffn: 1024 },
  },
  "mixtral-8x7b": {
    name: "mixtral-8x7b", dim: 4096, layers: 32, ffn: 14336, heads: 32, kvHeads: 8, vocab: 32000, contextLength: 32768,
    ropeTheta: 1000000, normEps: 1e-5, experts: { count: 8, used: 2, ffn: 14336 },
  },
  "qwen3-30b-a3b": {
    name: "qwen3-30b-a3b", arch: "qwen3moe", dim: 2048, layers: 48, ffn: 6144, heads: 32, kvHeads: 4, headDim: 128, vocab: 151936,
    contextLength: 40960, ropeTheta: 1000000, normEps: 1e-6, experts: { count: 128, used: 8, ffn: 768 },
  },
  // OLMoE-1B-7B's size in the Qwen3-MoE layout (16 layers, 64 experts of 1024, top-8; ~4 GB at
  // Q4_0): issue 10's flash-emu benchmark, whose RAM-backed device must hold the file.
  "olmoe-1b-7b": {
    name: "olmoe-1b-7b", arch: "qwen3moe", dim: 2048, layers: 16, ffn: 1024, heads: 16, kvHeads: 16, headDim: 128, vocab: 50304,
    contextLength: 4096, ropeTheta: 10000, normEps: 1e-5, experts: { count: 64, used: 8, ffn: 1024 },
  },
  // Mixtral-8x7B with 8 of its 32 layers (6.7 GB at Q4_0): the disk benchmark's stand-in, since the
  // full model and its Q4_1 twin (26 + 29 GB) take longer to write and convert than a run allows;
  // per layer it reads and holds exactly what the full model does.
  "mixtral-8x7b-8l": {
    name: "mixtral-8x7b-8l", dim: 4096, layers: 8, ffn: 14336, heads: 32, kvHeads: 8, vocab: 32000, contextLength: 32768,
    ropeTheta: 1000000, normEps: 1e-5, experts: { count: 8, used: 2, ffn: 14336 },
  },
} as const satisfies Record<string, LlamaShape>;

export type ShapeName = keyof typeof SHAPES;

export function getShape(name: string): LlamaShape {
  const s = (SHAPES as Record<string, LlamaShape>)[name];
  if (!s) throw new ActiveflowError("BAD_ARGUMENT", `unknown model shape "${name}", expected one of ${Object.keys(SHAPES).join(", ")}`);
  return s;
}

export interface ShapeTensor {
  name: string;
  // GGML order: [row length (n_in), rows (n_out)].
  dims: number[];
  // Norm weights stay F32 whatever the model type.
  isNorm: boolean;
  // An MoE router (ffn_gate_inp): F32 whatever the model type, as llama.cpp's quantizer keeps it.
  isRouter?: boolean;
}

// Every tensor of a llama model of this shape, in file order (untied output head).
export function llamaTensors(s: LlamaShape): ShapeTensor[] {
  const headDim = s.headDim ?? s.dim / s.heads;
  const qDim = headDim * s.heads;
  const kvDim = headDim * s.kvHeads;
  const x = s.experts;
  const out: ShapeTensor[] = [
    { name: "token_embd.weight", dims: [s.dim, s.vocab], isNorm: false },
  ];
  for (let l = 0; l < s.layers; l++) {
    const p = `blk.${l}.`;
    out.push(
      { name: `${p}attn_norm.weight`, dims: [s.dim], isNorm: true },
      { name: `${p}attn_q.weight`, dims: [s.dim, qDim], isNorm: false },
      { name: `${p}attn_k.weight`, dims: [s.dim, kvDim], isNorm: false },
      { name: `${p}attn_v.weight`, dims: [s.dim, kvDim], isNorm: false },
    );
    if (s.arch === "qwen3moe") {
      out.push(
        { name: `${p}attn_q_norm.weight`, dims: [headDim], isNorm: true },
        { name: `${p}attn_k_norm.weight`, dims: [headDim], isNorm: true },
      );
    }
    out.push(
      { name: `${p}attn_output.weight`, dims: [qDim, s.dim], isNorm: false },
      { name: `${p}ffn_norm.weight`, dims: [s.dim], isNorm: true },
    );
    if (x) {
      // Experts as llama.cpp stores them: 3-D, one [n_in, n_out] slice per expert.
      out.push(
        { name: `${p}ffn_gate_inp.weight`, dims: [s.dim, x.count], isNorm: false, isRouter: true },
        { name: `${p}ffn_gate_exps.weight`, dims: [s.dim, x.ffn, x.count], isNorm: false },
        { name: `${p}ffn_up_exps.weight`, dims: [s.dim, x.ffn, x.count], isNorm: false },
        { name: `${p}ffn_down_exps.weight`, dims: [x.ffn, s.dim, x.count], isNorm: false },
      );
    } else {
      out.push(
        { name: `${p}ffn_gate.weight`, dims: [s.dim, s.ffn], isNorm: false },
        { name: `${p}ffn_up.weight`, dims: [s.dim, s.ffn], isNorm: false },
        { name: `${p}ffn_down.weight`, dims: [s.ffn, s.dim], isNorm: false },
      );
    }
  }
  out.push(
    { name: "output_norm.weight", dims: [s.dim], isNorm: true },
    { name: "output.weight", dims: [s.dim, s.vocab], isNorm: false },
  );
  return out;
}

export function paramCount(s: LlamaShape): number {
  return llamaTensors(s).reduce((n, t) => n + t.dims.reduce((a, b) => a * b, 1), 0);
}

// Approximate file size of this shape in `type` (tensor data only; norms in F32).
export function dataBytes(s: LlamaShape, type: number): number {
  const layout = TYPE_LAYOUT[type];
  if (!layout) throw new ActiveflowError("BAD_ARGUMENT", `unknown tensor type ${typeName(type)}`);
  return llamaTensors(s).reduce((n, t) => {
    const el = t.dims.reduce((a, b) => a * b, 1);
    return n + (t.isNorm || t.isRouter ? el * 4 : (el / layout[0]) * layout[1]);
  }, 0);
}
