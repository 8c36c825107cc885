// Weight-aware selection (issue 13): skipping input j of a linear site adds an output error of
// |x_j| * ||W[:, j]||, so the engine can keep j by that score instead of |x_j| alone. The
// column norms come from the dequantised weights once per model; for a site read by several
// tensors (q, k, v | gate, up) the norm is the record's: sqrt of the sum of the tensors'
// squared column norms. Layout: [nLayer][site][site width] (widths n_embd, q width, n_embd,
// n_ff), the order of the engine's per-channel arrays (ActivationCounts).
import { open } from "node:fs/promises";
import { ActiveflowError } from "../errors.js";
import { SITES, type WeightStatistics } from "../backend/Backend.js";
import { SITE_TENSORS } from "../flash/format.js";
import { readGguf } from "../gguf/reader.js";
import { readModelConfig, type ModelConfig } from "../model/config.js";
import { splitFusedTensors } from "../model/fusedTensors.js";

// Input channels of each site, in SITES order.
export function siteWidths(c: Pick<ModelConfig, "nEmbd" | "nHead" | "headDim" | "nFf">): number[] {
  return [c.nEmbd, c.nHead * c.headDim, c.nEmbd, c.nFf];
}

// Most bytes read from the file at once (whole rows): bounds the memory a 7B's tensors take.
const CHUNK_BYTES = 32 << 20;

// Column norms of a plain GGUF's linear sites, from its dequantised weights.
export async function computeColumnNorms(backend: WeightStatistics, path: string): Promise<Float32Array> {
  const file = splitFusedTensors(await readGguf(path));
  const config = readModelConfig(file);
  const widths = siteWidths(config);
  const perLayer = widths.reduce((a, b) => a + b, 0);
  const out = new Float32Array(config.nLayer * perLayer);
  const tensors = new Map(file.tensors.map((t) => [t.name, t]));
  const fh = await open(path, "r");
  try {
    for (let l = 0; l < config.nLayer; l++) {
      let at = l * perLayer;
      for (const [s, site] of SITES.entries()) {
        const n = widths[s]!;
        const sums = new Float64Array(n);
        for (const name of SITE_TENSORS[site]) {
          const t = tensors.get(`blk.${l}.${name}.weight`);
          if (!t) throw new ActiveflowError("MODEL_BAD_SHAPE", `${path}: tensor blk.${l}.${name}.weight is missing`);
          if (t.dims[0] !== n) {
            throw new ActiveflowError("MODEL_BAD_SHAPE", `${path}: tensor ${t.name} has ${t.dims[0]} input channels, site ${site} has ${n}`);
          }
          const rows = t.dims.slice(1).reduce((a, b) => a * b, 1);
          const rowBytes = t.bytes / rows;
          const per = Math.max(1, Math.floor(CHUNK_BYTES / rowBytes));
          const buf = Buffer.allocUnsafe(Math.min(rows, per) * rowBytes);
          for (let r0 = 0; r0 < rows; r0 += per) {
            const r = Math.min(per, rows - r0);
            const want = r * rowBytes;
            const { bytesRead } = await fh.read(buf, 0, want, file.dataOffset + t.offset + r0 * rowBytes);
            if (bytesRead !== want) throw new ActiveflowError("MODEL_BAD_SHAPE", `${path}: tensor ${t.name} is cut short`);
            backend.columnSquares(t.type, buf.subarray(0, want), r, n, sums);
          }
        }
        for (let j = 0; j < n; j++) out[at + j] = Math.sqrt(sums[j]!);
        at += n;
      }
    }
  } finally {
    await fh.close();
  }
  return out;
}
