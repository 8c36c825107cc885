// Mixture-of-experts hyper-parameters, read as llama.cpp reads them (src/models/llama.cpp,
// qwen3moe.cpp, qwen2moe.cpp of the llama.cpp node-llama-cpp ships), and the refusal of the
// modes that do not handle experts yet (calibration, sparsity).
import { ActiveflowError } from "../errors.js";
import type { GgufFile, GgufValue } from "../gguf/types.js";

export interface MoeConfig {
  nExpert: number; // experts per layer
  nExpertUsed: number; // experts each token is routed to (top-k)
  nFfExp: number; // hidden width of one expert
  // Divide the selected experts' softmax probabilities by their sum. llama.cpp fixes this per
  // architecture (llama and qwen3moe: yes; qwen2moe: no), reading no key for these three.
  normWeights: boolean;
  // qwen2moe: the shared expert's hidden width (0: none); its output is scaled by
  // sigmoid(ffn_gate_inp_shexp . x).
  nFfShexp: number;
}

// Architectures whose every layer is MoE; llama is MoE when it has llama.expert_count.
export const MOE_ARCHITECTURES = ["qwen3moe", "qwen2moe"] as const;

function int(file: GgufFile, key: string): number | undefined {
  const v: GgufValue | undefined = file.metadata.get(key);
  if (v === undefined) return undefined;
  const n = typeof v === "bigint" ? Number(v) : v;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 0 || n > 1 << 24) {
    throw new ActiveflowError("GGUF_BAD_VALUE", `${file.path}: metadata ${key} = ${String(v)} is not a sane integer`);
  }
  return n;
}

// The MoE parameters of `arch` (undefined for a dense model). nFf is the file's
// feed_forward_length, if any: llama.cpp's fallback for the expert width is nFf / top-k.
export function readMoeConfig(file: GgufFile, arch: string, nFf: number | undefined): MoeConfig | undefined {
  const k = (s: string) => `${arch}.${s}`;
  const count = int(file, k("expert_count"));
  const moeArch = (MOE_ARCHITECTURES as readonly string[]).includes(arch);
  if (!moeArch && (count === undefined || count === 0)) return undefined;
  if (count === undefined || count === 0) {
    throw new ActiveflowError("GGUF_BAD_VALUE", `${file.path}: metadata ${k("expert_count")} must be a positive integer for ${arch}, found ${count ?? "none"}`);
  }
  const used = int(file, k("expert_used_count"));
  if (used === undefined || used === 0 || used > count) {
    throw new ActiveflowError(
      "GGUF_BAD_VALUE",
      `${file.path}: metadata ${k("expert_used_count")} = ${used ?? "none"} must be from 1 to ${k("expert_count")} = ${count}`,
    );
  }
  // Mixtral (llama) experts are feed_forward_length wide; the Qwen MoEs say so in their own key.
  const exp = arch === "llama" ? nFf : int(file, k("expert_feed_forward_length")) || (nFf !== undefined ? Math.floor(nFf / used) : undefined);
  if (!exp) {
    throw new ActiveflowError("GGUF_BAD_VALUE", `${file.path}: metadata ${k("expert_feed_forward_length")} is missing (and no ${k("feed_forward_length")} to derive it)`);
  }
  // qwen2moe's shared expert is expert_shared_feed_forward_length wide, else feed_forward_length.
  const shexp = arch === "qwen2moe" ? int(file, k("expert_shared_feed_forward_length")) || nFf : 0;
  if (arch === "qwen2moe" && !shexp) {
    throw new ActiveflowError("GGUF_BAD_VALUE", `${file.path}: metadata ${k("expert_shared_feed_forward_length")} is missing (and no ${k("feed_forward_length")})`);
  }
  return { nExpert: count, nExpertUsed: used, nFfExp: exp, normWeights: arch !== "qwen2moe", nFfShexp: shexp ?? 0 };
}

// Calibration and contextual sparsity do not handle experts yet (issue 10, item 4): an MoE
// model runs dense or from the flash layout without sparsity, and asking for more fails with
// this, before any work.
export function moeUnsupported(path: string, arch: string, nExpert: number | undefined, what: string): ActiveflowError {
  return new ActiveflowError(
    "MODEL_UNSUPPORTED",
    `${path}: ${what} is not supported for mixture-of-experts models yet (${arch}${nExpert !== undefined ? `, ${nExpert} experts` : ""}); they run without contextual sparsity (--sparsity)`,
  );
}

// Throws moeUnsupported when the GGUF's header describes an MoE model.
export function refuseMoe(file: GgufFile, what: string): void {
  const arch = file.metadata.get("general.architecture");
  if (typeof arch !== "string") return;
  const count = file.metadata.get(`${arch}.expert_count`);
  const n = count === undefined ? undefined : Number(count);
  if ((MOE_ARCHITECTURES as readonly string[]).includes(arch) || (n !== undefined && n > 0)) throw moeUnsupported(file.path, arch, n, what);
}
