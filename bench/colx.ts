// Split columns against requantised columns of the same type (Q4_0, Q4_1, Q8_0), kernel only (bench/native/colx_bench.cpp): builds
// the C++ driver against the addon's kernel objects (run `npm run build:native` first), runs
// it on the 7B's and SmolLM2's linear shapes at a few sparsities on every ISA path, and writes
// bench/results/colx-<date>.json. Run it under the exclusive benchmark lock.
//
// Usage: node dist/bench/colx.js [--reps 30] [--isas avx512,avx2] [--keep 0.5,0.2] [--batch 1]
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { machineInfo } from "./lib/machine.js";
import { repoRoot } from "./lib/paths.js";

const { values } = parseArgs({
  options: {
    reps: { type: "string", default: "30" },
    isas: { type: "string", default: "avx512,avx2" },
    keep: { type: "string", default: "0.5,0.2" },
    batch: { type: "string", default: "1" },
  },
});

// [n_out, n_in, what]: the 7B's attn (q), ffn_in (gate or up), ffn_out (down); SmolLM2's ffn_in.
const SHAPES: [number, number, string][] = [
  [4096, 4096, "7B attn_q / attn_output"],
  [11008, 4096, "7B ffn_gate / ffn_up"],
  [4096, 11008, "7B ffn_down"],
  [1536, 576, "SmolLM2 ffn_gate / ffn_up"],
];

const root = repoRoot();
const obj = join(root, "build", "obj");
const exe = join(root, "build", "colx_bench");
const kernelObjects = readdirSync(obj).filter((f) => f.startsWith("isa_") || f.startsWith("k_")).map((f) => join(obj, f));
execFileSync("g++", [
  "-std=c++17", "-O2", "-march=x86-64", `-I${join(root, "native", "include")}`, `-I${join(root, "native")}`,
  join(root, "bench", "native", "colx_bench.cpp"), ...kernelObjects, "-o", exe, "-pthread",
], { stdio: "inherit" });

const machine = machineInfo();
const rows: Record<string, unknown>[] = [];
for (const isa of values.isas!.split(",")) {
  for (const keep of values.keep!.split(",")) {
    for (const [nOut, nIn, what] of SHAPES) {
      for (const batch of values.batch!.split(",")) {
        const line = execFileSync(exe, [isa, String(nOut), String(nIn), keep, values.reps!, batch], { encoding: "utf8" }).trim();
        const r = { shape: what, keep: Number(keep), ...(JSON.parse(line) as Record<string, number>) };
        rows.push(r);
        const n = (k: string): number => r[k as keyof typeof r] as number;
        console.log(
          `${isa.padEnd(6)} keep ${keep.padEnd(4)} nb ${batch.padStart(2)} ${what.padEnd(26)} ` +
            ["q4_0", "q4_1", "q8_0"].map((t) => `${t} split ${n(`${t}_split_us`).toFixed(0).padStart(5)} cols ${n(`${t}_cols_us`).toFixed(0).padStart(5)} us`).join(" | "),
        );
      }
    }
  }
}
const date = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
const dir = join(root, "bench", "results");
mkdirSync(dir, { recursive: true });
const file = join(dir, `colx-${date}Z.json`);
writeFileSync(file, `${JSON.stringify({
  what: "af_colx_axpy (split: codes on flash + resident f16 scale plane) vs af_col_axpy (requantised columns), one thread, best of reps; bytes = code bytes of the active channels (+ the whole scale plane for split)",
  reps: Number(values.reps),
  machine,
  note: "run under flock -x /tmp/af-bench.lock: no other build, test or benchmark ran meanwhile; the lead's and other helpers' editors and idle processes may have",
  rows,
}, null, 2)}\n`);
console.log(file);
