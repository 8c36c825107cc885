// Column layouts of one model side by side: split columns (the default for Q4_0 / Q4_1 / Q8_0
// sources) against requantised columns of forced types. For each layout: the file's bytes
// (flash extents + resident scale planes + copied tensors) against the source; quality
// against the source run dense on the first tokens of wiki.test.raw (evaluation only);
// decode speed in DRAM (`activeflow run --json` in a child process, layouts alternating run
// by run, medians).
//
// Usage: node dist/bench/layouts.js --model <gguf> --dir <scratch dir> [--layouts split,q8_0,q4_1]
//   [--quality-tokens 8192] [--levels 0,0.5] [--no-quality] [--speed-runs 3] [--threads 1,2]
//   [--dram 300%] [--sparsity 0] [--tokens 64] [--no-speed] [--calibration <table.json>]
// Conversions are kept in --dir and reused. A layout file without thresholds gets the table of
// --calibration (a <model>.calibration.json), else of the first layout file that has one.
// Quality runs under a shared lock, speed under the exclusive one (see notes/helper-common.md).
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { parseArgs } from "node:util";
import { Engine } from "../src/index.js";
import { evaluateQuality } from "../src/eval/quality.js";
import { convertToFlash, type ConvertReport } from "../src/flash/convert.js";
import { openFlashModel } from "../src/flash/open.js";
import { GgmlType } from "../src/gguf/types.js";
import { loadCalibration, saveCalibration } from "../src/sparsity/store.js";
import { thresholdsFor } from "../src/sparsity/thresholds.js";
import { machineInfo } from "./lib/machine.js";
import { repoRoot } from "./lib/paths.js";
import { median } from "./lib/stats.js";
import { defaultBackend } from "../src/backends/default.js";

const { values } = parseArgs({
  options: {
    model: { type: "string" },
    dir: { type: "string" },
    layouts: { type: "string", default: "split,q8_0,q4_1" },
    "group-size": { type: "string", default: "1" },
    "quality-tokens": { type: "string", default: "8192" },
    levels: { type: "string", default: "0,0.5" },
    window: { type: "string", default: "512" },
    "no-quality": { type: "boolean", default: false },
    "speed-runs": { type: "string", default: "3" },
    threads: { type: "string", default: "1,2" },
    dram: { type: "string", default: "300%" },
    sparsity: { type: "string", default: "0" },
    tokens: { type: "string", default: "64" },
    "no-speed": { type: "boolean", default: false },
    calibration: { type: "string" },
    tag: { type: "string", default: "" },
  },
});
if (!values.model || !values.dir) throw new Error("--model and --dir are required");
const model = values.model;
const dir = values.dir;
mkdirSync(dir, { recursive: true });
const root = repoRoot();
const stem = basename(model).replace(/\.gguf$/i, "");
const layouts = values.layouts!.split(",");
const groupSize = Number(values["group-size"]);

// Fixed prompt for speed runs: long enough that prefill reads (nearly) every active column
// into the cache, so decode measures DRAM speed rather than the cache filling from flash.
const PROMPT = "The history of the city begins with a small settlement on the river, where traders from the north and the south met to exchange grain, salt, cloth and tools. Over the centuries it grew into";

interface LayoutRow {
  layout: string;
  file: string;
  convert?: Omit<ConvertReport, "inPath" | "outPath"> & { seconds: number };
  bytes: { file: number; extents: number; scalePlanes: number; residentCopied: number; source: number };
  quality: { sparsity: number; kl_to_dense: number; top1_agreement: number; ppl: number; ppl_dense: number; tokens: number; active_fraction: number[] }[];
  speed: { threads: number; runs: { decode_tokens_per_s: number; compute_s: number; io_wait_s: number; decode_s: number; generated_tokens: number; flash_bytes_read: number }[]; median_decode_tokens_per_s?: number; median_compute_s?: number }[];
}

const rows: LayoutRow[] = [];
for (const layout of layouts) {
  const file = join(dir, `${stem}.g${groupSize}.${layout}.af.gguf`);
  let convert: LayoutRow["convert"];
  if (!existsSync(file)) {
    console.error(`converting ${model} -> ${file}`);
    const t = GgmlType[layout.toUpperCase() as keyof typeof GgmlType];
    const r = await convertToFlash(defaultBackend(), model, file, { groupSize, ...(layout === "split" ? {} : { columnType: t }) });
    const { inPath: _i, outPath: _o, ...rest } = r;
    convert = rest;
  }
  const fm = await openFlashModel(file);
  const scalePlanes = fm.scales.reduce((n, t) => n + t.bytes, 0);
  rows.push({
    layout, file, ...(convert ? { convert } : {}),
    bytes: {
      file: statSync(file).size, extents: fm.extents.reduce((n, e) => n + e.bytes, 0), scalePlanes,
      residentCopied: fm.resident.reduce((n, t) => n + t.bytes, 0) - scalePlanes, source: statSync(model).size,
    },
    quality: [],
    speed: [],
  });
}

// Thresholds: the same table in every layout file, so layouts are compared at the same cuts.
let table = values.calibration ? JSON.parse(readFileSync(values.calibration, "utf8")) : undefined;
for (const r of rows) {
  if (table) break;
  table = await loadCalibration(r.file);
}
for (const r of rows) {
  if (await loadCalibration(r.file)) continue;
  if (!table) break;
  if (values.calibration) copyFileSync(values.calibration, `${r.file}.calibration.json`);
  else await saveCalibration(r.file, table);
}

if (!values["no-quality"]) {
  const text = readFileSync(join(root, "..", "shared", "data", "wikitext-2-raw", "wiki.test.raw"), "utf8");
  const window = Number(values.window);
  const nTokens = Number(values["quality-tokens"]);
  const reference = await Engine.load(model, { contextLength: window, threads: 2 });
  const ids = reference.tokenizer.encode(text.slice(0, nTokens * 8)).slice(0, nTokens);
  for (const r of rows) {
    const e = await Engine.load(r.file, { contextLength: window, threads: 2 });
    const own = await loadCalibration(r.file);
    for (const s of values.levels!.split(",").map(Number)) {
      const th = s > 0 && own ? thresholdsFor(own, s) : null;
      if (s > 0 && !th) continue;
      const q = await evaluateQuality(e, ids, th, { window, reference });
      r.quality.push({ sparsity: s, ...q });
      console.error(`${r.layout} sparsity ${s}: KL ${q.kl_to_dense.toFixed(5)} top-1 ${q.top1_agreement.toFixed(4)} ppl ${q.ppl.toFixed(3)} (dense ${q.ppl_dense.toFixed(3)})`);
    }
    await e.dispose();
  }
  await reference.dispose();
}

if (!values["no-speed"]) {
  const cli = join(root, "bin", "activeflow.js");
  for (const threads of values.threads!.split(",").map(Number)) {
    for (const r of rows) r.speed.push({ threads, runs: [] });
    for (let run = 0; run < Number(values["speed-runs"]); run++) {
      // Alternate the layouts run by run (and their order every run) so drift hits all alike.
      const order = run % 2 === 0 ? rows : [...rows].reverse();
      for (const r of order) {
        const out = execFileSync(process.execPath, [cli, "run", r.file, "-p", PROMPT, "-n", values.tokens!, "--greedy", "--dram", values.dram!,
          "--sparsity", values.sparsity!, "-t", String(threads), "--json"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
        const j = JSON.parse(out.trim().split("\n").at(-1)!) as Record<string, number>;
        const s = r.speed.find((x) => x.threads === threads)!;
        s.runs.push({
          decode_tokens_per_s: j.decode_tokens_per_s!, compute_s: j.compute_s!, io_wait_s: j.io_wait_s!, decode_s: j.decode_s!,
          generated_tokens: j.generated_tokens!, flash_bytes_read: j.flash_bytes_read!,
        });
        console.error(`${r.layout} t${threads} run ${run}: ${j.decode_tokens_per_s!.toFixed(2)} tok/s, compute ${j.compute_s!.toFixed(3)} s, io wait ${j.io_wait_s!.toFixed(3)} s`);
      }
    }
    for (const r of rows) {
      const s = r.speed.find((x) => x.threads === threads)!;
      s.median_decode_tokens_per_s = median(s.runs.map((x) => x.decode_tokens_per_s));
      s.median_compute_s = median(s.runs.map((x) => x.compute_s));
    }
  }
}

for (const r of rows) {
  const mib = (b: number) => (b / (1 << 20)).toFixed(1);
  console.log(`${r.layout.padEnd(6)} file ${mib(r.bytes.file)} MiB (extents ${mib(r.bytes.extents)} + planes ${mib(r.bytes.scalePlanes)} + copied ${mib(r.bytes.residentCopied)}; source ${mib(r.bytes.source)})  ` +
    r.quality.map((q) => `s${q.sparsity}: KL ${q.kl_to_dense.toFixed(4)} top1 ${(q.top1_agreement * 100).toFixed(1)}%`).join("  ") + "  " +
    r.speed.map((s) => `t${s.threads}: ${s.median_decode_tokens_per_s?.toFixed(2)} tok/s, compute ${s.median_compute_s?.toFixed(3)} s`).join("  "));
}
const date = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
const outFile = join(root, "bench", "results", `layouts-${stem}${values.tag ? `-${values.tag}` : ""}-${date}Z.json`);
writeFileSync(outFile, `${JSON.stringify({
  model, groupSize, prompt: PROMPT, dram: values.dram, sparsity: Number(values.sparsity), tokens: Number(values.tokens),
  quality_text: "wiki.test.raw, first tokens (evaluation only)", machine: machineInfo(),
  note: "speed runs under flock -x /tmp/af-bench.lock (no other build, test or benchmark meanwhile); quality under flock -s",
  rows,
}, null, 2)}\n`);
console.log(outFile);
