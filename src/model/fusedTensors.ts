// Phi-3 stores a layer's q/k/v as one tensor (attn_qkv: q rows, then k, then v) and gate/up
// as one (ffn_up: 2 n_ff rows, the gate's first, as llama.cpp's LLM_FFN_SWIGLU splits it).
// The rows of a row-major tensor, quantised or not, are contiguous, so each part is a view of
// the file under the separate name (attn_q, attn_k, attn_v, ffn_gate, ffn_up): the dense
// engine binds it in place, and the converter, sparsity and budgeted paths see the same four
// sites as for llama.
import { ActiveflowError } from "../errors.js";
import type { GgufFile, GgufTensorInfo } from "../gguf/types.js";
import { readModelConfig } from "./config.js";

// `file` with its fused tensors replaced by their row-range views; the same object when there
// are none (every architecture but phi3, or a file already split).
export function splitFusedTensors(file: GgufFile): GgufFile {
  if (file.metadata.get("general.architecture") !== "phi3") return file;
  const names = new Set(file.tensors.map((t) => t.name));
  const fused = (t: GgufTensorInfo): boolean =>
    /^blk\.\d+\.attn_qkv\.weight$/.test(t.name) ||
    (/^blk\.\d+\.ffn_up\.weight$/.test(t.name) && !names.has(t.name.replace("ffn_up", "ffn_gate")));
  if (!file.tensors.some(fused)) return file;
  const c = readModelConfig(file);
  const q = c.nHead * c.headDim;
  const kv = c.nHeadKv * c.headDim;
  const tensors: GgufTensorInfo[] = [];
  for (const t of file.tensors) {
    if (!fused(t)) {
      tensors.push(t);
      continue;
    }
    const layer = t.name.slice(0, t.name.indexOf(".", 4) + 1); // "blk.N."
    const parts: [string, number][] = t.name.endsWith("attn_qkv.weight")
      ? [["attn_q", q], ["attn_k", kv], ["attn_v", kv]]
      : [["ffn_gate", c.nFf], ["ffn_up", c.nFf]];
    const rows = parts.reduce((n, [, r]) => n + r, 0);
    if (t.dims.length !== 2 || t.dims[0] !== c.nEmbd || t.dims[1] !== rows) {
      throw new ActiveflowError("MODEL_BAD_SHAPE",
        `${file.path}: tensor ${t.name} has dims [${t.dims.join(", ")}], expected [${c.nEmbd}, ${rows}] (${parts.map(([n, r]) => `${n} ${r}`).join(" + ")} rows)`);
    }
    const rowBytes = t.bytes / rows;
    let r0 = 0;
    for (const [name, r] of parts) {
      tensors.push({ name: `${layer}${name}.weight`, dims: [c.nEmbd, r], type: t.type, offset: t.offset + r0 * rowBytes, bytes: r * rowBytes });
      r0 += r;
    }
  }
  return { ...file, tensors };
}
