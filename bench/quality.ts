// Quality of contextual sparsity on held-out text: perplexity, mean KL(dense || sparse) and
// top-1 agreement with the dense model, teacher-forced over wiki.test.raw (never used to
// calibrate), for a table of sparsity levels. Also the cost of the flash layout's column
// requantisation: the flash engine at the same sparsities against the dense GGUF.
//
// Usage: node dist/bench/quality.js [--model path] [--tokens 8192] [--levels 0,0.3,0.5,0.7]
//        [--flash-levels 0,0.5] [--threads 2] [--no-flash]
import { mkdirSync, readFileSync, writeFileSync, renameSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Engine } from "../src/engine/Engine.js";
import { ensureConverted } from "../src/flash/cache.js";
import { modelsDir } from "../src/fetch/cache.js";
import { calibrate } from "../src/sparsity/calibrate.js";
import { loadCalibration, saveCalibration } from "../src/sparsity/store.js";
import { thresholdsFor } from "../src/sparsity/thresholds.js";
import { argmax, logSoftmax } from "../src/eval/quality.js";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, here.includes("/dist/") ? "../.." : "..");

const { values } = parseArgs({
  options: {
    model: { type: "string" },
    tokens: { type: "string", default: "8192" },
    levels: { type: "string", default: "0,0.3,0.5,0.7" },
    "flash-levels": { type: "string", default: "0,0.5" },
    threads: { type: "string", default: "2" },
    window: { type: "string", default: "512" },
    "no-flash": { type: "boolean", default: false },
  },
});
const model = values.model ?? join(modelsDir(), "SmolLM2-135M-Instruct.Q4_1.gguf");
const nTokens = Number(values.tokens);
const levels = values.levels!.split(",").map(Number);
const flashLevels = values["flash-levels"]!.split(",").map(Number);
const threads = Number(values.threads);
const window = Number(values.window);

interface Row {
  engine: "gguf" | "flash";
  sparsity: number;
  ppl: number;
  kl_to_dense: number;
  top1_agreement: number;
  tokens: number;
  active_fraction: number[];
  seconds: number;
}

// Teacher-forced log-probs of every window position of `ids` under `engine` at thresholds `th`.
async function score(engine: Engine, ids: number[], th: Float32Array | null): Promise<{ rows: Float64Array[]; kept: number[]; seen: number[] }> {
  engine.setThresholds(th);
  engine.siteCounts(true);
  const rows: Float64Array[] = [];
  for (let start = 0; start + 1 < ids.length; start += window) {
    const w = ids.slice(start, start + window);
    const logits = await engine.evaluateLogits(w);
    for (let i = 0; i + 1 < w.length; i++) rows.push(logSoftmax(logits[i]!));
  }
  const c = engine.siteCounts(true);
  return { rows, kept: c.kept, seen: c.seen };
}

function targets(ids: number[]): number[] {
  const t: number[] = [];
  for (let start = 0; start + 1 < ids.length; start += window) {
    const w = ids.slice(start, start + window);
    for (let i = 0; i + 1 < w.length; i++) t.push(w[i + 1]!);
  }
  return t;
}

function compare(dense: Float64Array[], sparse: Float64Array[], next: number[]) {
  let nll = 0, kl = 0, agree = 0;
  for (let i = 0; i < dense.length; i++) {
    const d = dense[i]!, s = sparse[i]!;
    nll -= s[next[i]!]!;
    let k = 0;
    for (let v = 0; v < d.length; v++) k += Math.exp(d[v]!) * (d[v]! - s[v]!);
    kl += k;
    if (argmax(d) === argmax(s)) agree++;
  }
  const n = dense.length;
  return { ppl: Math.exp(nll / n), kl_to_dense: kl / n, top1_agreement: agree / n, tokens: n };
}

async function main() {
  const text = readFileSync(resolve(root, "../shared/data/wikitext-2-raw/wiki.test.raw"), "utf8");
  const dense = await Engine.load(model, { threads, contextLength: window });
  let table = await loadCalibration(model);
  if (!table) {
    console.error("calibrating on self-generated text (once)...");
    table = await calibrate(dense);
    await saveCalibration(model, table);
  }
  const ids = dense.tokenizer.encode(text.slice(0, nTokens * 8)).slice(0, nTokens);
  const next = targets(ids);
  const results: Row[] = [];
  let t0 = performance.now();
  const ref = await score(dense, ids, null);
  console.error(`dense: ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  const run = async (engine: Engine, kind: "gguf" | "flash", s: number) => {
    t0 = performance.now();
    const r = await score(engine, ids, s > 0 ? thresholdsFor(table!, s) : null);
    const row: Row = {
      engine: kind,
      sparsity: s,
      ...compare(ref.rows, r.rows, next),
      active_fraction: r.kept.map((k, i) => (r.seen[i]! > 0 ? k / r.seen[i]! : 1)),
      seconds: (performance.now() - t0) / 1000,
    };
    results.push(row);
    console.error(JSON.stringify(row));
  };
  // The dense row itself: its ppl is the reference the others are read against.
  results.push({ engine: "gguf", sparsity: 0, ...compare(ref.rows, ref.rows, next), active_fraction: [1, 1, 1, 1], seconds: 0 });
  for (const s of levels.filter((l) => l > 0)) await run(dense, "gguf", s);
  await dense.dispose();
  if (!values["no-flash"]) {
    const flashPath = await ensureConverted(model, { groupSize: 1, log: (l) => console.error(l) });
    if (!(await loadCalibration(flashPath))) await saveCalibration(flashPath, table);
    // No budget: every column cached, so this measures the layout's arithmetic, not I/O.
    const flash = await Engine.load(flashPath, { threads, contextLength: window });
    for (const s of flashLevels) await run(flash, "flash", s);
    await flash.dispose();
  }
  console.log("engine sparsity     ppl   KL(dense||x)  top-1   active(attn_in, attn_out, ffn_in, ffn_out)");
  for (const r of results) {
    console.log(
      `${r.engine.padEnd(6)} ${r.sparsity.toFixed(2).padStart(8)} ${r.ppl.toFixed(3).padStart(8)} ${r.kl_to_dense.toFixed(4).padStart(12)} ` +
        `${(r.top1_agreement * 100).toFixed(1).padStart(6)}%   ${r.active_fraction.map((a) => a.toFixed(3)).join(", ")}`,
    );
  }
  const out = {
    date: new Date().toISOString(),
    model,
    text: "wiki.test.raw (first tokens)",
    tokens_scored: next.length,
    window,
    calibration: { source: table.source, tokens: table.calibrationTokens },
    machine: { cpu: cpus()[0]?.model, nproc: cpus().length, loadavg: loadavg() },
    results,
  };
  const dir = join(root, "bench", "results");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `quality-${out.date.replace(/[:.]/g, "-")}.json`);
  writeFileSync(`${file}.tmp`, JSON.stringify(out, null, 2));
  renameSync(`${file}.tmp`, file);
  console.log(`saved ${file}`);
}

main().catch((e) => {
  console.error(`error: ${(e as Error).message}`);
  process.exit(1);
});
