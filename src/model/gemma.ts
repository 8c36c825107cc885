// Gemma 2 and Gemma 3 (text) hyper-parameters, read as llama.cpp reads them: src/models/gemma2.cpp
// and gemma3.cpp (load_arch_hparams), llama-hparams.cpp (set_swa_pattern) and llama-model.cpp
// (the common rope keys), at the version node-llama-cpp 3.22.1 bundles.
import { ActiveflowError } from "../errors.js";
import type { GgufFile } from "../gguf/types.js";
import type { ModelConfig } from "./config.js";
import { num, positive } from "./metadataNumbers.js";

type GemmaFields = Pick<
  ModelConfig,
  "embdScale" | "attnScale" | "attnSoftcap" | "finalSoftcap" | "ffnGelu" | "postNorms" | "slidingWindow" | "swaLayers" | "ropeThetaSwa" | "ropeScale" | "ropeScaleSwa"
>;

// llama.cpp's defaults where a key is absent.
const GEMMA2_WINDOW = 4096;
const GEMMA2_ATTN_SOFTCAP = 50;
const GEMMA2_FINAL_SOFTCAP = 30;
const SWA_PATTERN = { gemma2: 2, gemma3: 6 } as const;
// Gemma 3's local layers keep the hparams default when rope.freq_base_swa is absent.
const GEMMA3_ROPE_THETA_SWA = 10000;
// The 27B models scale attention by 1/sqrt(n_embd / n_head) instead of 1/sqrt(head_dim);
// llama.cpp recognises them by their layer count.
const LAYERS_27B = { gemma2: 46, gemma3: 62 } as const;

// The tensors a Gemma text model has; anything else (vision or audio towers, Gemma 3n's
// per-layer inputs, dense embedding heads) is a variant this engine does not run.
const TOP_TENSORS = new Set(["token_embd.weight", "output_norm.weight", "output.weight"]);
const LAYER_TENSORS = new Set([
  "attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "post_attention_norm",
  "ffn_norm", "ffn_gate", "ffn_up", "ffn_down", "post_ffw_norm",
].map((n) => `${n}.weight`));
const GEMMA3_LAYER_TENSORS = new Set(["attn_q_norm.weight", "attn_k_norm.weight"]);

const f32 = Math.fround;

function unsupported(file: GgufFile, what: string): ActiveflowError {
  return new ActiveflowError("MODEL_UNSUPPORTED", `${file.path}: ${what} is not supported`);
}

function checkTensors(file: GgufFile, arch: "gemma2" | "gemma3"): void {
  for (const t of file.tensors) {
    if (t.name.startsWith("af.")) continue; // the flash layout's own tensors (docs/FLASH_FORMAT.md)
    // llama.cpp's gemma2 always ties the head to token_embd and refuses a file with a head.
    if (TOP_TENSORS.has(t.name) && !(arch === "gemma2" && t.name === "output.weight")) continue;
    const m = /^blk\.\d+\.(.+)$/.exec(t.name);
    if (m && (LAYER_TENSORS.has(m[1]!) || (arch === "gemma3" && GEMMA3_LAYER_TENSORS.has(m[1]!)))) continue;
    throw unsupported(file, `${arch} tensor ${t.name}`);
  }
}

// Which layers use the sliding window: the key's per-layer booleans, or every layer but each
// n-th (n from the key or the architecture; 0 = all), as llama_hparams::set_swa_pattern.
function swaLayersOf(file: GgufFile, arch: "gemma2" | "gemma3", nLayer: number): boolean[] {
  const key = `${arch}.attention.sliding_window_pattern`;
  const v = file.metadata.get(key);
  if (Array.isArray(v)) {
    if (v.length !== nLayer || !v.every((b) => typeof b === "boolean")) {
      throw new ActiveflowError("GGUF_BAD_VALUE", `${file.path}: metadata ${key} must hold ${nLayer} booleans, one per layer`);
    }
    return v as boolean[];
  }
  const n = num(file, key, SWA_PATTERN[arch]);
  if (!Number.isInteger(n) || n < 0) throw new ActiveflowError("GGUF_BAD_VALUE", `${file.path}: metadata ${key} = ${n} is not a layer period`);
  return Array.from({ length: nLayer }, (_, il) => n === 0 || il % n < n - 1);
}

export function readGemmaConfig(
  file: GgufFile,
  arch: "gemma2" | "gemma3",
  s: { nLayer: number; nEmbd: number; nHead: number; headDim: number; nRot: number; ropeTheta: number },
): GemmaFields {
  const k = (key: string) => `${arch}.${key}`;
  checkTensors(file, arch);
  for (const key of ["attention.key_length_swa", "attention.value_length_swa", "rope.dimension_count_swa"]) {
    const v = file.metadata.get(k(key));
    if (v !== undefined && Number(v) !== (key.startsWith("rope") ? s.nRot : s.headDim)) throw unsupported(file, `metadata ${k(key)} = ${String(v)}`);
  }

  // Rope scaling, as llama.cpp reads it for every architecture: the type defaults to linear,
  // the factor comes from rope.scaling.factor or the older rope.scale_linear (0 = none).
  const typeValue = file.metadata.get(k("rope.scaling.type"));
  const scaling = typeof typeValue === "string" ? typeValue : "linear";
  if (scaling !== "none" && scaling !== "linear") throw unsupported(file, `rope scaling "${scaling}" (metadata ${k("rope.scaling.type")})`);
  const attnFactor = num(file, k("rope.scaling.attn_factor"), 1);
  if (attnFactor !== 1) throw unsupported(file, `metadata ${k("rope.scaling.attn_factor")} = ${attnFactor}`);
  const factor = num(file, k("rope.scaling.factor"), num(file, k("rope.scale_linear"), 0));
  if (!(factor >= 0) || !Number.isFinite(factor)) throw new ActiveflowError("GGUF_BAD_VALUE", `${file.path}: rope scaling factor ${factor} is not a finite non-negative number`);
  const trainScale = factor === 0 ? 1 : f32(1 / f32(factor));
  // A "none" type stops the scaling of the global layers only (llama_context); Gemma 2's local
  // layers keep the trained scale, Gemma 3's are never scaled.
  const ropeScale = scaling === "none" ? 1 : trainScale;

  const large = s.nLayer === LAYERS_27B[arch];
  const attnScale = f32(1 / f32(Math.sqrt(large ? Math.floor(s.nEmbd / s.nHead) : s.headDim)));
  const common = { embdScale: f32(Math.sqrt(s.nEmbd)), attnScale, ffnGelu: true, postNorms: true, ropeScale };

  if (arch === "gemma2") {
    const window = positive(file, k("attention.sliding_window"), num(file, k("attention.sliding_window"), GEMMA2_WINDOW));
    return {
      ...common,
      attnSoftcap: num(file, k("attn_logit_softcapping"), GEMMA2_ATTN_SOFTCAP),
      finalSoftcap: num(file, k("final_logit_softcapping"), GEMMA2_FINAL_SOFTCAP),
      slidingWindow: window,
      swaLayers: swaLayersOf(file, arch, s.nLayer),
      ropeThetaSwa: num(file, k("rope.freq_base_swa"), s.ropeTheta),
      ropeScaleSwa: trainScale,
    };
  }
  // Gemma 3 slides only when the file gives a window.
  const window = num(file, k("attention.sliding_window"), 0);
  if (!Number.isInteger(window) || window < 0) throw new ActiveflowError("GGUF_BAD_VALUE", `${file.path}: metadata ${k("attention.sliding_window")} = ${window} is not a window length`);
  return {
    ...common,
    attnSoftcap: 0,
    finalSoftcap: num(file, k("final_logit_softcapping"), 0),
    slidingWindow: window,
    swaLayers: window > 0 ? swaLayersOf(file, arch, s.nLayer) : new Array<boolean>(s.nLayer).fill(false),
    ropeThetaSwa: window > 0 ? num(file, k("rope.freq_base_swa"), GEMMA3_ROPE_THETA_SWA) : s.ropeTheta,
    ropeScaleSwa: window > 0 ? 1 : ropeScale,
  };
}
