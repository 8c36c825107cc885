// How a sparsity level is spread over layers and sites, and what it does to quality: builds
// the uniform, matched and greedy tables (src/sparsity/calibrate.ts) from one calibration
// text, scores each at a few levels against the dense model on the calibration text itself
// (for choosing) and, with --wiki, on wiki.test.raw (for reporting only; never calibrated on).
// Same metrics and windows as `activeflow eval`; the dense pass of a window is shared by all
// tables. Writes bench/results/quality-alloc-<date>.json.
//
// Usage: npx tsx bench/quality-alloc.ts [--model path] [--text file] [--per-prompt 64]
//        [--calib-tokens 4096] [--levels 0.3,0.5,0.7] [--methods uniform,matched,greedy] [--wiki] [--wiki-methods greedy] [--tokens 8192]
//        [--tables dir]   (tables are cached in dir, default /tmp/af-alloc/tables)
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Engine } from "../src/index.js";
import { argmax, logSoftmax } from "../src/eval/quality.js";
import { modelsDir } from "../src/fetch/cache.js";
import { allocateGreedy, meanSparsity, probeSensitivity, siteWeightBytes, type Sensitivity } from "../src/sparsity/allocate.js";
import { calibrationText, captureHistograms, matchedThresholds } from "../src/sparsity/calibrate.js";
import { SPARSITY_LEVELS, tableFromJson, tableToJson, thresholdsFor, thresholdsFromHistograms, type ThresholdTable } from "../src/sparsity/thresholds.js";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, here.includes("/dist/") ? "../.." : "..");
const { values } = parseArgs({
  options: {
    model: { type: "string" },
    text: { type: "string" },
    "per-prompt": { type: "string", default: "64" },
    "calib-tokens": { type: "string", default: "4096" },
    levels: { type: "string", default: "0.3,0.5,0.7" },
    methods: { type: "string", default: "uniform,matched,greedy" },
    wiki: { type: "boolean", default: false },
    "wiki-methods": { type: "string" },
    "skip-calib-eval": { type: "boolean", default: false },
    tokens: { type: "string", default: "8192" },
    tables: { type: "string", default: "/tmp/af-alloc/tables" },
    threads: { type: "string", default: "2" },
    tag: { type: "string", default: "" },
  },
});
const model = values.model ?? join(modelsDir(), "SmolLM2-135M-Instruct.Q4_1.gguf");
const levels = values.levels!.split(",").map(Number);
const methods = values.methods!.split(",");
const log = (s: string) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${s}\n`);

if (values.text && basename(values.text) === "wiki.test.raw") throw new Error("never calibrate on wiki.test.raw");
const calibName = values.text ? basename(values.text) : `self${values["per-prompt"]}`;
const tableDir = values.tables!;
mkdirSync(tableDir, { recursive: true });
const tablePath = (m: string) => join(tableDir, `${basename(model)}.${calibName}.${m}.json`);

interface Score {
  ppl: number;
  kl_to_dense: number;
  top1_agreement: number;
  tokens: number;
  active_fraction: number[];
  active_bytes_fraction: number;
}

// Like evaluateQuality, for several threshold sets at once.
async function scoreMany(engine: Engine, windows: number[][], configs: Float32Array[], siteBytes: number[]): Promise<Score[]> {
  const acc = configs.map(() => ({ nll: 0, kl: 0, agree: 0, n: 0, kept: [0, 0, 0, 0], seen: [0, 0, 0, 0] }));
  for (const [wi, w] of windows.entries()) {
    if (w.length < 2) continue;
    engine.setThresholds(null);
    const dense = (await engine.evaluateLogits(w)).map((l) => logSoftmax(l));
    for (const [ci, th] of configs.entries()) {
      engine.setThresholds(th);
      engine.siteCounts(true);
      const sparse = (await engine.evaluateLogits(w)).map((l) => logSoftmax(l));
      const c = engine.siteCounts(true);
      const a = acc[ci]!;
      for (let s = 0; s < 4; s++) {
        a.kept[s]! += c.kept[s]!;
        a.seen[s]! += c.seen[s]!;
      }
      for (let i = 0; i + 1 < w.length; i++) {
        const d = dense[i]!, sp = sparse[i]!;
        a.nll -= sp[w[i + 1]!]!;
        let k = 0;
        for (let v = 0; v < d.length; v++) {
          const pd = Math.exp(d[v]!);
          if (pd > 0) k += pd * (d[v]! - sp[v]!);
        }
        a.kl += k;
        if (argmax(d) === argmax(sp)) a.agree++;
        a.n++;
      }
    }
    log(`  window ${wi + 1}/${windows.length}`);
  }
  const totalBytes = siteBytes.reduce((x, y) => x + y, 0);
  return acc.map((a) => {
    const active = a.kept.map((k, s) => (a.seen[s]! > 0 ? k / a.seen[s]! : 1));
    return {
      ppl: Math.exp(a.nll / a.n),
      kl_to_dense: a.kl / a.n,
      top1_agreement: a.agree / a.n,
      tokens: a.n,
      active_fraction: active,
      active_bytes_fraction: active.reduce((x, f, s) => x + f * siteBytes[s]!, 0) / totalBytes,
    };
  });
}

async function main() {
  const engine = await Engine.load(model, { threads: Number(values.threads), contextLength: 512 });
  const bytes = await siteWeightBytes(engine);
  const siteBytes = [0, 1, 2, 3].map((s) => {
    let b = 0;
    for (let l = 0; l < engine.config.nLayer; l++) b += bytes[l * 4 + s]!;
    return b;
  });
  log(`site bytes ${siteBytes.join(", ")}`);
  const calib = await calibrationText(engine, {
    ...(values.text ? { text: readFileSync(values.text, "utf8"), maxTokens: Number(values["calib-tokens"]) } : {}),
    tokensPerPrompt: Number(values["per-prompt"]),
  });
  log(`calibration text: ${calib.tokens} tokens in ${calib.windows.length} windows (${calib.source})`);
  const dense = await captureHistograms(engine, calib.windows, null);
  const uniform = thresholdsFromHistograms(dense, engine.config.nLayer, SPARSITY_LEVELS, calib.tokens, calib.source);
  const tables = new Map<string, ThresholdTable>();
  let sens: Sensitivity | undefined;
  for (const m of methods) {
    if (existsSync(tablePath(m))) {
      tables.set(m, tableFromJson(JSON.parse(readFileSync(tablePath(m), "utf8")), tablePath(m)));
      log(`${m}: cached ${tablePath(m)}`);
      continue;
    }
    let targets = uniform.siteSparsity!;
    if (m === "uniform") {
      tables.set(m, uniform);
    } else {
      if (m === "greedy") {
        const t0 = performance.now();
        sens = await probeSensitivity(engine, calib.windows, dense, { onProgress: (f) => { if (Math.round(f * 120) % 12 === 0) log(`  probes ${(f * 100).toFixed(0)} %`); } });
        log(`probes: ${((performance.now() - t0) / 1000).toFixed(0)} s on ${sens.tokens} tokens`);
        writeFileSync(join(tableDir, `${basename(model)}.${calibName}.sens.json`), JSON.stringify({ probe: sens.probe, tokens: sens.tokens, kl: Array.from(sens.kl) }));
        targets = allocateGreedy(dense, sens, bytes, SPARSITY_LEVELS);
      }
      const thresholds: Float32Array[] = [];
      for (const [i, target] of targets.entries()) {
        thresholds.push(SPARSITY_LEVELS[i] === 0 ? uniform.thresholds[i]! : await matchedThresholds(engine, calib.windows, dense, target));
        log(`${m}: level ${SPARSITY_LEVELS[i]} (byte-weighted mean ${meanSparsity(target, bytes).toFixed(3)})`);
      }
      tables.set(m, { ...uniform, thresholds, siteSparsity: targets, method: m });
    }
    writeFileSync(tablePath(m), JSON.stringify(tableToJson(tables.get(m)!)));
  }
  const names = [...tables.keys()];
  const configs = names.flatMap((m) => levels.map((s) => ({ m, s, th: thresholdsFor(tables.get(m)!, s) })));
  const results: Record<string, unknown>[] = [];
  if (!values["skip-calib-eval"]) {
    log(`scoring ${configs.length} configs on the calibration text`);
    const r = await scoreMany(engine, calib.windows, configs.map((c) => c.th), siteBytes);
    configs.forEach((c, i) => results.push({ text: `calibration (${calib.source})`, method: c.m, sparsity: c.s, ...r[i] }));
  }
  if (values.wiki) {
    const wiki = readFileSync(resolve(root, "../shared/data/wikitext-2-raw/wiki.test.raw"), "utf8");
    const n = Number(values.tokens);
    const ids = engine.tokenizer.encode(wiki.length > n * 16 ? wiki.slice(0, n * 16) : wiki).slice(0, n);
    const windows: number[][] = [];
    for (let i = 0; i + 1 < ids.length; i += 512) windows.push(ids.slice(i, i + 512));
    const wikiMethods = values["wiki-methods"]?.split(",") ?? names;
    const wc = configs.filter((c) => wikiMethods.includes(c.m));
    log(`scoring ${wc.length} configs on wiki.test.raw (${ids.length} tokens)`);
    const r = await scoreMany(engine, windows, wc.map((c) => c.th), siteBytes);
    wc.forEach((c, i) => results.push({ text: "wiki.test.raw", method: c.m, sparsity: c.s, ...r[i] }));
  }
  await engine.dispose();
  for (const r of results) {
    const x = r as unknown as Score & { text: string; method: string; sparsity: number };
    console.log(
      `${x.text.slice(0, 12).padEnd(12)} ${x.method.padEnd(8)} ${x.sparsity.toFixed(2)} ppl ${x.ppl.toFixed(3)} KL ${x.kl_to_dense.toFixed(4)} ` +
        `top1 ${x.top1_agreement.toFixed(4)} active ${x.active_fraction.map((a) => a.toFixed(3)).join("/")} bytes ${x.active_bytes_fraction.toFixed(3)}`,
    );
  }
  const date = new Date().toISOString();
  const out = {
    date, model, calibration: { source: calib.source, tokens: calib.tokens, file: values.text ?? null },
    site_bytes: siteBytes, machine: { cpu: cpus()[0]?.model, nproc: cpus().length, loadavg: loadavg() },
    allocation: Object.fromEntries(names.map((m) => [m, tables.get(m)!.siteSparsity?.map((a) => Array.from(a))])),
    sensitivity: sens ? { probe: sens.probe, tokens: sens.tokens, kl: Array.from(sens.kl) } : undefined,
    results,
  };
  const dir = join(root, "bench", "results");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `quality-alloc-${values.tag ? `${values.tag}-` : ""}${date.replace(/[:.]/g, "-")}.json`);
  writeFileSync(`${file}.tmp`, JSON.stringify(out, null, 1));
  renameSync(`${file}.tmp`, file);
  console.log(`saved ${file}`);
}

main().catch((e) => {
  console.error(`error: ${(e as Error).stack}`);
  process.exit(1);
});
