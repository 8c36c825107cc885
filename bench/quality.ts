// Quality of contextual sparsity on held-out text: perplexity, mean KL(dense || x) and top-1
// agreement with the dense model, teacher-forced over wiki.test.raw (never used to calibrate
// or train), for sparsity levels of the model and of its distilled copies, plus a Pareto plot
// (weight bytes read per token against perplexity and against top-1 agreement).
//
// Distilled models are found by name beside the model: <stem>.distilled-s<s>.gguf (what
// `activeflow distill` writes). Each is scored at its own sparsity with its own calibration
// table (<file>.calibration.json; made by `activeflow calibrate` when missing) and with the
// source model's thresholds, and dense. Sparsities without a distilled file are listed as missing.
//
// Weight bytes per token are computed, not measured: for every layer, the measured active
// fraction of each site's inputs times the GGUF bytes of the matrices reading that site
// (q, k, v | o | gate, up | down), plus the output head, read in full for every token.
//
// --tables a.json,b.json scores the model under each of these calibration tables (e.g. a
// weight-aware and a magnitude table, `activeflow calibrate --selection`) in the same run,
// against one dense pass, instead of the model's own table.
//
// Usage: node dist/bench/quality.js [--model path] [--tokens 8192] [--levels 0,0.3,0.5,0.6,0.7,0.8]
//        [--flash-levels 0,0.5] [--threads 2] [--no-flash] [--no-distilled] [--no-plot] [--tables a.json,b.json]
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Engine } from "../src/index.js";
import { ensureConverted } from "../src/flash/cache.js";
import { cacheRoot, modelsDir } from "../src/fetch/cache.js";
import { readGguf } from "../src/gguf/reader.js";
import { calibrate } from "../src/sparsity/calibrate.js";
import { loadCalibration, saveCalibration } from "../src/sparsity/store.js";
import { selectionOf, tableFromJson, thresholdsFor, type ThresholdTable } from "../src/sparsity/thresholds.js";
import { argmax, logSoftmax } from "../src/eval/quality.js";
import { defaultBackend } from "../src/backends/default.js";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, here.includes("/dist/") ? "../.." : "..");

const { values } = parseArgs({
  options: {
    model: { type: "string" },
    tokens: { type: "string", default: "8192" },
    levels: { type: "string", default: "0,0.3,0.5,0.6,0.7,0.8" },
    "flash-levels": { type: "string", default: "0,0.5" },
    threads: { type: "string", default: "2" },
    window: { type: "string", default: "512" },
    "no-flash": { type: "boolean", default: false },
    "no-distilled": { type: "boolean", default: false },
    "no-plot": { type: "boolean", default: false },
    tables: { type: "string" },
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
  model: "undistilled" | "distilled";
  distilled_for?: number; // the sparsity a distilled model was trained at
  thresholds: "source" | "own"; // the source model's calibration table, or the distilled model's own
  file: string;
  table?: string; // --tables: the table file scored
  selection: string; // the table's rule: magnitude |x| or weight |x| x column norm
  method?: string; // the table's allocation method
  sparsity: number;
  ppl: number;
  kl_to_dense: number;
  top1_agreement: number;
  tokens: number;
  active_fraction: number[];
  weight_bytes_per_token: number;
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

// GGUF bytes of the matrices behind each site, summed over layers, and of the output head.
async function siteBytes(path: string): Promise<{ site: number[]; head: number }> {
  const f = await readGguf(path);
  const bytes = (name: string) => {
    const t = f.tensors.find((x) => x.name === name);
    return t ? t.bytes : 0;
  };
  const site = [0, 0, 0, 0];
  const groups: string[][] = [["attn_q", "attn_k", "attn_v"], ["attn_output"], ["ffn_gate", "ffn_up"], ["ffn_down"]];
  for (const t of f.tensors) {
    const m = /^blk\.\d+\.(\w+)\.weight$/.exec(t.name);
    if (!m) continue;
    groups.forEach((g, i) => {
      if (g.includes(m[1]!)) site[i] = site[i]! + bytes(t.name);
    });
  }
  return { site, head: bytes("output.weight") || bytes("token_embd.weight") };
}

// Distilled copies beside the model: <stem>.distilled-s<s>.gguf -> s.
function findDistilled(path: string): Map<number, string> {
  const stem = basename(path).replace(/\.gguf$/i, "");
  const found = new Map<number, string>();
  for (const n of readdirSync(dirname(path))) {
    const m = new RegExp(`^${stem.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\.distilled-s([0-9.]+)\\.gguf$`).exec(n);
    if (m) found.set(Number(m[1]), join(dirname(path), n));
  }
  return found;
}

// The matplotlib venv bench/plot.ts uses (<cache>/bench-venv), created on first use.
function plotPython(): string {
  const venv = join(cacheRoot(), "bench-venv");
  const py = join(venv, "bin", "python");
  const ok = () => {
    try {
      execFileSync(py, ["-c", "import matplotlib"], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  };
  if (existsSync(py) && ok()) return py;
  console.error(`creating ${venv} with matplotlib (once) ...`);
  if (!existsSync(py)) execFileSync("python3", ["-m", "venv", venv], { stdio: "inherit" });
  execFileSync(py, ["-m", "pip", "install", "-q", "matplotlib"], { stdio: "inherit" });
  return py;
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
  const bytes = await siteBytes(model);
  const perToken = (active: number[]) => bytes.head + active.reduce((a, f, i) => a + f * bytes.site[i]!, 0);
  const results: Row[] = [];
  let t0 = performance.now();
  const ref = await score(dense, ids, null);
  console.error(`dense: ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  const run = async (engine: Engine, kind: "gguf" | "flash", s: number, tab: ThresholdTable, extra: Pick<Row, "model" | "thresholds" | "file"> & { table?: string } & { distilled_for?: number }) => {
    t0 = performance.now();
    engine.setColumnNorms(s > 0 && tab.selection === "weight" ? tab.columnNorms! : null);
    const r = await score(engine, ids, s > 0 ? thresholdsFor(tab, s) : null);
    const active = r.kept.map((k, i) => (r.seen[i]! > 0 ? k / r.seen[i]! : 1));
    const row: Row = {
      engine: kind,
      ...extra,
      selection: selectionOf(tab),
      ...(tab.method !== undefined ? { method: tab.method } : {}),
      sparsity: s,
      ...compare(ref.rows, r.rows, next),
      active_fraction: active,
      weight_bytes_per_token: perToken(active),
      seconds: (performance.now() - t0) / 1000,
    };
    results.push(row);
    console.error(JSON.stringify(row));
  };
  const base = { model: "undistilled" as const, thresholds: "source" as const, file: model };
  // The dense row itself: its ppl is the reference the others are read against.
  results.push({
    engine: "gguf", ...base, selection: "dense", sparsity: 0, ...compare(ref.rows, ref.rows, next), active_fraction: [1, 1, 1, 1],
    weight_bytes_per_token: perToken([1, 1, 1, 1]), seconds: 0,
  });
  const extraTables = values.tables ? values.tables.split(",").map((f) => ({ file: f, table: tableFromJson(JSON.parse(readFileSync(f, "utf8")), f) })) : [];
  if (extraTables.length === 0) for (const s of levels.filter((l) => l > 0)) await run(dense, "gguf", s, table, base);
  for (const s of levels.filter((l) => l > 0)) for (const t of extraTables) await run(dense, "gguf", s, t.table, { ...base, table: t.file });
  await dense.dispose();

  const missing: number[] = [];
  if (!values["no-distilled"]) {
    const found = findDistilled(model);
    for (const s of levels.filter((l) => l > 0 && !found.has(l))) missing.push(s);
    for (const [s, file] of [...found].sort((a, b) => a[0] - b[0])) {
      const e = await Engine.load(file, { threads, contextLength: window });
      let own = await loadCalibration(file);
      if (!own) {
        console.error(`calibrating ${basename(file)} on self-generated text (once)...`);
        own = await calibrate(e);
        await saveCalibration(file, own);
      }
      const d = { model: "distilled" as const, distilled_for: s, file };
      await run(e, "gguf", 0, own, { ...d, thresholds: "own" });
      await run(e, "gguf", s, own, { ...d, thresholds: "own" });
      await run(e, "gguf", s, table, { ...d, thresholds: "source" });
      await e.dispose();
    }
    if (missing.length > 0) console.error(`no distilled model for sparsity ${missing.join(", ")} (activeflow distill ${model} --sparsity s)`);
  }
  if (!values["no-flash"]) {
    const flashPath = await ensureConverted(defaultBackend(), model, { groupSize: 1, log: (l) => console.error(l) });
    if (!(await loadCalibration(flashPath))) await saveCalibration(flashPath, table);
    // No budget: every column cached, so this measures the layout's arithmetic, not I/O.
    const flash = await Engine.load(flashPath, { threads, contextLength: window });
    if (extraTables.length === 0) for (const s of flashLevels) await run(flash, "flash", s, table, { ...base, file: flashPath });
    for (const s of flashLevels) for (const t of extraTables) await run(flash, "flash", s, t.table, { ...base, file: flashPath, table: t.file });
    await flash.dispose();
  }
  console.log("engine model        thresholds selection sparsity      ppl  KL(dense||x)  top-1   MB/token  active(attn_in, attn_out, ffn_in, ffn_out)");
  for (const r of results) {
    const who = r.model === "distilled" ? `dist@${r.distilled_for}` : "undistilled";
    console.log(
      `${r.engine.padEnd(6)} ${who.padEnd(12)} ${r.thresholds.padEnd(10)} ${r.selection.padEnd(9)} ${r.sparsity.toFixed(2).padStart(8)} ${r.ppl.toFixed(3).padStart(8)} ` +
        `${r.kl_to_dense.toFixed(4).padStart(12)} ${(r.top1_agreement * 100).toFixed(1).padStart(6)}% ${(r.weight_bytes_per_token / 1e6).toFixed(2).padStart(9)}   ` +
        `${r.active_fraction.map((a) => a.toFixed(3)).join(", ")}`,
    );
  }
  for (const s of missing) console.log(`distilled s=${s}: missing`);
  const out = {
    date: new Date().toISOString(),
    model,
    text: "wiki.test.raw (first tokens)",
    tokens_scored: next.length,
    window,
    calibration: { source: table.source, tokens: table.calibrationTokens },
    tables: extraTables.map((t) => ({ file: t.file, selection: selectionOf(t.table), method: t.table.method, source: t.table.source, tokens: t.table.calibrationTokens })),
    weight_bytes: { per_site: bytes.site, head: bytes.head, note: "per token = head + sum(active fraction x site bytes)" },
    machine: { cpu: cpus()[0]?.model, nproc: cpus().length, loadavg: loadavg() },
    results,
    missing_distilled: missing,
  };
  const dir = join(root, "bench", "results");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `quality-${out.date.replace(/[:.]/g, "-")}.json`);
  writeFileSync(`${file}.tmp`, JSON.stringify(out, null, 2));
  renameSync(`${file}.tmp`, file);
  console.log(`saved ${file}`);
  if (!values["no-plot"]) {
    const png = execFileSync(plotPython(), [join(root, "bench", "plot_quality.py"), file, file.replace(/\.json$/, ".png")], { encoding: "utf8" });
    console.log(`saved ${png.trim()}`);
  }
}

main().catch((e) => {
  console.error(`error: ${(e as Error).message}`);
  process.exit(1);
});
