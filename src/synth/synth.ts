// Writes a llama-architecture GGUF with random weights for speed, I/O and memory tests.
// Quantised blocks are made directly from random bytes (no float quantisation), in
// fixed-size chunks, so even a 7B model streams to disk in a few MB of memory. The same
// seed gives the same file; each tensor has its own PRNG stream.
import { ActiveflowError } from "../errors.js";
import { GgmlType, TYPE_LAYOUT, typeName } from "../gguf/types.js";
import { GgufWriter, f32, str, u32, type GgufWriterTensor } from "../gguf/writer.js";
import { fp16ToFp32, fp32ToFp16 } from "./quantize.js";
import { getShape, llamaTensors, type LlamaShape } from "./shapes.js";
import { buildVocab, tokenizerMetadata } from "./vocab.js";

// llama_ftype of a model whose linear weights are all `type`.
export function fileTypeOf(type: number): number {
  const ftype: Record<number, number> = {
    [GgmlType.F32]: 0, [GgmlType.F16]: 1, [GgmlType.Q4_0]: 2, [GgmlType.Q4_1]: 3, [GgmlType.Q8_0]: 7,
    [GgmlType.Q4_K]: 15, [GgmlType.Q5_K]: 17, [GgmlType.Q6_K]: 18, [GgmlType.BF16]: 32,
  };
  const f = ftype[type];
  if (f === undefined) throw new ActiveflowError("BAD_ARGUMENT", `no llama file type for ${typeName(type)}`);
  return f;
}

// splitmix32 finaliser: spreads (seed, tensor index) into a nonzero xorshift state.
function mix(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x21f0aaad);
  x = Math.imul(x ^ (x >>> 15), 0x735a2d97);
  x ^= x >>> 15;
  return x >>> 0 || 0x9e3779b9;
}

// xorshift32 over whole words: fast enough to make GBs of weight bytes.
export class Rng {
  private s: number;
  constructor(seed: number, stream: number) {
    this.s = mix((seed >>> 0) ^ mix(stream + 0x632be5ab));
  }
  fill(words: Uint32Array): void {
    let s = this.s;
    for (let i = 0; i < words.length; i++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      words[i] = s;
    }
    this.s = s;
  }
}

// Std of one code around its mean; times the block scale it gives the weight std. Codes:
// Q4_0 -8..7, Q4_1 0..15 (m = -7.5 d), Q8_0 -128..127, Q4_K 32 * (0..15) (dmin = 7.5 d,
// all sub-block scales and mins 32), Q5_K 32 * (0..31) (dmin = 15.5 d), Q6_K 16 * (-32..31).
// Block scales take a random sign, so a code mean of -0.5 cancels across blocks.
const uniformStd = (levels: number): number => Math.sqrt((levels * levels - 1) / 12);
const CODE_STD: Record<number, number> = {
  [GgmlType.Q4_0]: Math.sqrt(uniformStd(16) ** 2 + 0.25),
  [GgmlType.Q4_1]: uniformStd(16),
  [GgmlType.Q8_0]: Math.sqrt(uniformStd(256) ** 2 + 0.25),
  [GgmlType.Q4_K]: 32 * uniformStd(16),
  [GgmlType.Q5_K]: 32 * uniformStd(32),
  [GgmlType.Q6_K]: 16 * Math.sqrt(uniformStd(64) ** 2 + 0.25),
};
// Q4_K/Q5_K packed 6-bit scales and mins, all 32 (see ggml's get_scale_min_k4).
const K_SCALES_32 = [0xa0, 0xa0, 0xa0, 0xa0, 0xa0, 0xa0, 0xa0, 0xa0, 0, 0, 0, 0];

export const SYNTH_TYPES: readonly number[] = [
  GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q8_0,
  GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K,
];

const CHUNK_TARGET = 4 << 20;

// Random bytes for one tensor of `type` whose weights have std `std`, yielded in chunks of
// whole blocks. The chunk buffer is reused, which the writer allows.
function* randomTensor(type: number, elements: number, std: number, rng: Rng): Generator<Uint8Array> {
  const [qk, bb] = TYPE_LAYOUT[type]!;
  const total = (elements / qk) * bb;
  // Whole blocks and whole words per chunk.
  const unit = bb * 4;
  const chunkBytes = Math.max(unit, Math.floor(CHUNK_TARGET / unit) * unit);
  const buf = new Uint8Array(Math.min(chunkBytes, Math.ceil(total / 4) * 4));
  const words = new Uint32Array(buf.buffer);
  // Per-block scales picked by a random byte: magnitude 0.5x..1.5x of the mean, either sign;
  // `offsets` holds the matching Q4_1 m / K-quant dmin.
  const scale = new Uint16Array(256);
  const offsets = new Uint16Array(256);
  const codeStd = CODE_STD[type] ?? 1;
  const zero = type === GgmlType.Q4_1 ? -7.5 : type === GgmlType.Q4_K ? 7.5 : type === GgmlType.Q5_K ? 15.5 : 0;
  for (let k = 0; k < 256; k++) {
    const d = fp32ToFp16((k & 1 ? -1 : 1) * (std / codeStd) * (0.5 + (k >> 1) / 128));
    scale[k] = d;
    offsets[k] = fp32ToFp16(zero * fp16ToFp32(d));
  }
  // Float values come from a 4096-entry uniform table (std `std`) picked by random bits.
  const a = std * Math.sqrt(3);
  const f32Table = new Float32Array(4096).map((_, k) => -a + (2 * a * (k + 0.5)) / 4096);
  const f16Table = new Uint16Array(4096).map((_, k) =>
    type === GgmlType.BF16 ? Math.round(new Uint32Array(f32Table.buffer, k * 4, 1)[0]! / 65536) : fp32ToFp16(f32Table[k]!));
  const f32View = new Float32Array(buf.buffer);
  const u16View = new Uint16Array(buf.buffer);

  for (let done = 0; done < total; ) {
    const n = Math.min(buf.length, total - done);
    const nWords = Math.ceil(n / 4);
    rng.fill(words.subarray(0, nWords));
    switch (type) {
      case GgmlType.F32:
        for (let i = 0; i < nWords; i++) f32View[i] = f32Table[words[i]! & 4095]!;
        break;
      case GgmlType.F16:
      case GgmlType.BF16:
        for (let i = 0; i < n / 2; i++) u16View[i] = f16Table[u16View[i]! & 4095]!;
        break;
      case GgmlType.Q4_0:
      case GgmlType.Q8_0:
        for (let o = 0; o < n; o += bb) setHalf(buf, o, scale[buf[o]!]!);
        break;
      case GgmlType.Q4_1:
        for (let o = 0; o < n; o += bb) {
          const k = buf[o]!;
          setHalf(buf, o, scale[k]!);
          setHalf(buf, o + 2, offsets[k]!);
        }
        break;
      case GgmlType.Q4_K:
      case GgmlType.Q5_K:
        for (let o = 0; o < n; o += bb) {
          const k = buf[o]!;
          setHalf(buf, o, scale[k]!);
          setHalf(buf, o + 2, offsets[k]!);
          buf.set(K_SCALES_32, o + 4);
        }
        break;
      case GgmlType.Q6_K:
        // Layout: ql[128], qh[64], int8 scales[16], half d.
        for (let o = 0; o < n; o += bb) {
          buf.fill(16, o + 192, o + 208);
          setHalf(buf, o + 208, scale[buf[o]!]!);
        }
        break;
      default:
        throw new ActiveflowError("BAD_ARGUMENT", `synth: random ${typeName(type)} weights are not implemented`);
    }
    yield buf.subarray(0, n);
    done += n;
  }
}

function setHalf(buf: Uint8Array, o: number, h: number): void {
  buf[o] = h & 0xff;
  buf[o + 1] = h >> 8;
}

function* ones(elements: number): Generator<Uint8Array> {
  yield new Uint8Array(new Float32Array(elements).fill(1).buffer);
}

export interface SynthOptions {
  // PRNG seed; the same seed gives the same bytes. Defaults to 1.
  seed?: number;
  // "q4_k_m": llama.cpp's Q4_K_M mix instead of one type for every linear weight (type must
  // be Q4_K): output.weight and, in the layers llama.cpp gives more bits, attn_v and ffn_down
  // in Q6_K. Defaults to none.
  mix?: SynthMix;
  onProgress?: (bytesWritten: number, totalBytes: number) => void;
  signal?: AbortSignal;
}

export const SYNTH_MIXES = ["q4_k_m"] as const;
export type SynthMix = (typeof SYNTH_MIXES)[number];

// llama.cpp's use_more_bits: the first and last eighth of the layers and every third between.
function moreBits(layer: number, layers: number): boolean {
  const e = Math.floor(layers / 8);
  return layer < e || layer >= Math.floor((7 * layers) / 8) || (layer - e) % 3 === 2;
}

// The type of a (non-norm) tensor under a mix.
function mixedType(name: string, type: number, mix: SynthMix | undefined, layers: number): number {
  if (mix === undefined) return type;
  if (name === "output.weight") return GgmlType.Q6_K;
  const m = /^blk\.(\d+)\.(attn_v|ffn_down|ffn_down_exps)\.weight$/.exec(name);
  return m && moreBits(Number(m[1]), layers) ? GgmlType.Q6_K : type;
}

// Special tokens of synthesized models, after the 256 byte tokens and 3 merge results.
const SYNTH_MERGES = ["t o", "to k", "tok _"];
const SYNTH_SPECIALS = ["<s>", "</s>"];

// Writes a random-weight GGUF of `shape` (llama, Mixtral or Qwen3-MoE layout) with linear
// weights, token_embd and output in `type` (or the types of options.mix), F32 norms (all
// ones) and F32 MoE routers (random).
export async function synthesizeModel(
  shape: LlamaShape | string,
  type: number,
  outPath: string,
  options: SynthOptions = {},
): Promise<void> {
  const s = typeof shape === "string" ? getShape(shape) : shape;
  if (!SYNTH_TYPES.includes(type)) {
    throw new ActiveflowError("BAD_ARGUMENT", `synth: type ${typeName(type)} is not supported, expected one of ${SYNTH_TYPES.map(typeName).join(", ")}`);
  }
  if (options.mix !== undefined && (type !== GgmlType.Q4_K || !SYNTH_MIXES.includes(options.mix))) {
    throw new ActiveflowError("BAD_ARGUMENT", `synth: mix "${options.mix}" needs type q4_k (expected one of ${SYNTH_MIXES.join(", ")} with --type q4_k)`);
  }
  if ((s.headDim === undefined && s.dim % s.heads !== 0) || s.heads % s.kvHeads !== 0) {
    throw new ActiveflowError("BAD_ARGUMENT", `synth: shape ${s.name} has dim ${s.dim}, ${s.heads} heads, ${s.kvHeads} kv heads (heads must divide dim, kv heads must divide heads)`);
  }
  const vocab = buildVocab(SYNTH_MERGES, SYNTH_SPECIALS, s.vocab);
  if (vocab.tokens.length !== s.vocab) {
    throw new ActiveflowError("BAD_ARGUMENT", `synth: vocab ${s.vocab} of shape ${s.name} is smaller than the ${vocab.tokens.length} byte and special tokens`);
  }
  const writerOptions: ConstructorParameters<typeof GgufWriter>[1] = {};
  if (options.onProgress) writerOptions.onProgress = options.onProgress;
  if (options.signal) writerOptions.signal = options.signal;
  const w = new GgufWriter(outPath, writerOptions);
  const arch = s.arch ?? "llama";
  const headDim = s.headDim ?? s.dim / s.heads;
  w.set("general.architecture", str(arch))
    .set("general.name", str(`activeflow-synth-${s.name}`))
    .set("general.file_type", u32(fileTypeOf(type)))
    .set("general.quantization_version", u32(2))
    .set(`${arch}.block_count`, u32(s.layers))
    .set(`${arch}.context_length`, u32(s.contextLength))
    .set(`${arch}.embedding_length`, u32(s.dim))
    .set(`${arch}.feed_forward_length`, u32(s.ffn))
    .set(`${arch}.attention.head_count`, u32(s.heads))
    .set(`${arch}.attention.head_count_kv`, u32(s.kvHeads))
    .set(`${arch}.rope.freq_base`, f32(s.ropeTheta))
    .set(`${arch}.rope.dimension_count`, u32(headDim))
    .set(`${arch}.attention.layer_norm_rms_epsilon`, f32(s.normEps))
    .set(`${arch}.vocab_size`, u32(s.vocab));
  if (s.headDim !== undefined) w.set(`${arch}.attention.key_length`, u32(headDim)).set(`${arch}.attention.value_length`, u32(headDim));
  if (s.experts) {
    w.set(`${arch}.expert_count`, u32(s.experts.count)).set(`${arch}.expert_used_count`, u32(s.experts.used));
    if (arch !== "llama") w.set(`${arch}.expert_feed_forward_length`, u32(s.experts.ffn));
  }
  const meta = tokenizerMetadata(vocab, {
    pre: "default", bos: vocab.special.get("<s>")!, eos: vocab.special.get("</s>")!, addBos: true,
  });
  for (const [k, v] of meta) w.set(k, v);

  const tensors = llamaTensors(s);
  const infos: GgufWriterTensor[] = tensors.map((t) => ({
    name: t.name,
    dims: t.dims,
    type: t.isNorm || t.isRouter ? GgmlType.F32 : mixedType(t.name, type, options.mix, s.layers),
  }));
  for (const t of infos) w.addTensor(t);
  const seed = options.seed ?? 1;
  await w.write((info, i) => {
    const t = tensors[i]!;
    const elements = t.dims.reduce((a, b) => a * b, 1);
    if (t.isNorm) return ones(elements);
    // Std 1/sqrt(n_in) keeps each projection's output near unit scale.
    return randomTensor(info.type, elements, 1 / Math.sqrt(t.dims[0]!), new Rng(seed, i));
  });
}
