// Engine memory: what a budgeted process holds above its runtime floor besides the native
// buffers the planner sizes, measured to derive the constants of memory/budget.ts engineBytes
// (docs/MEMORY.md). Two measurements, each in fresh processes as a user runs them:
//  1. vocabulary: the RSS a loaded tokenizer keeps (header read, tables built, header dropped)
//     for metadata-only files of SmolLM2's vocabulary with and without its merges, a 512-token
//     vocabulary and a 32,000-token one (llama2-7b's size): per token and per merge;
//  2. runs: `run --dram` of a tiny synthetic model and of SmolLM2: what the model's memory holds
//     besides the weights, KV cache and scratch (the residual). The tiny model's is the base;
//     SmolLM2's less the base is its vocabulary's part at a run's peak, larger than a tokenizer
//     alone keeps by the room V8 leaves around a larger live heap; it sets the per-token and
//     per-merge bytes, split between tokens and merges as the tokenizers loaded alone split.
// Usage: node dist/bench/engineMemory.js [--runs N] [--out file.json]
//        (a child: node --semi-space-growth-factor=1 dist/bench/engineMemory.js --vocab <gguf>)
import { spawnSync } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
// The package entry: it makes the native addon the default backend (measureRuntimeFloor loads it).
import { Engine } from "../src/index.js";
import { modelsDir } from "../src/fetch/cache.js";
import { readTypedMetadata } from "../src/flash/typedMetadata.js";
import { readGguf } from "../src/gguf/reader.js";
import { GgmlType } from "../src/gguf/types.js";
import { GgufWriter, strArr, type GgufWriteValue } from "../src/gguf/writer.js";
import { ENGINE_BASE_BYTES, ENGINE_BYTES_PER_MERGE, ENGINE_BYTES_PER_TOKEN } from "../src/memory/budget.js";
import { synthesizeModel } from "../src/synth/synth.js";
import { buildVocab, tokenizerMetadata } from "../src/synth/vocab.js";
import { createTokenizer } from "../src/tokenizer/index.js";
import { machineInfo } from "./lib/machine.js";
import { repoRoot } from "./lib/paths.js";
import { median, table } from "./lib/stats.js";

const MiB = 1 << 20;
const SMOLLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf";
// The CLI's V8 flag (bin/activeflow.js): children measure under the heap a user runs.
const NODE_FLAGS = ["--semi-space-growth-factor=1"];

interface VocabSample { tokens: number; merges: number; rssBytes: number; heapBytes: number; externalBytes: number }

// Child: the RSS the tokenizer of `path` keeps above the runtime floor once its header is gone.
async function vocabChild(path: string): Promise<void> {
  const floor = Engine.measureRuntimeFloor();
  const m0 = process.memoryUsage();
  let file: Awaited<ReturnType<typeof readGguf>> | undefined = await readGguf(path);
  const tokenizer = createTokenizer(file);
  file = undefined;
  await sleep(200); // V8 finishes its concurrent work as it would between load and generation
  const m = process.memoryUsage();
  const sample: VocabSample = {
    tokens: tokenizer.vocabSize, merges: tokenizer.vocab.mergeRanks.size,
    rssBytes: m.rss - floor, heapBytes: m.heapTotal - m0.heapTotal, externalBytes: m.external - m0.external,
  };
  process.stdout.write(`${JSON.stringify(sample)}\n`);
}

async function writeVocabFile(path: string, entries: Iterable<[string, GgufWriteValue]>): Promise<void> {
  const w = new GgufWriter(path);
  for (const [k, v] of entries) w.set(k, v);
  await w.write(() => new Uint8Array(0));
}

function child(args: string[], env: NodeJS.ProcessEnv = process.env): string {
  const r = spawnSync(process.execPath, args, { env, encoding: "utf8", maxBuffer: 64 * MiB });
  if (r.status !== 0) throw new Error(`${args.join(" ")} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

interface RunSample { modelMemoryBytes: number; nativeBytes: number; engineChargedBytes: number; budgetBytes: number }

function cliRun(model: string, dram: string, cache: string): RunSample {
  const bin = join(repoRoot(), "bin", "activeflow.js");
  const out = child([bin, "run", model, "--dram", dram, "-p", "The capital of France is", "-n", "16", "--greedy", "--json"], { ...process.env, ACTIVEFLOW_CACHE: cache });
  const j = JSON.parse(out.trimEnd().split("\n").at(-1)!) as Record<string, number>;
  return {
    modelMemoryBytes: j.model_memory_peak_bytes!, budgetBytes: j.dram_budget_bytes!, engineChargedBytes: j.engine_bytes ?? 0,
    nativeBytes: j.weight_resident_bytes_peak! + j.kv_bytes! + j.scratch_bytes!,
  };
}

async function main(argv: string[]): Promise<void> {
  if (argv[0] === "--vocab") return vocabChild(argv[1]!);
  const runs = Number(argv[argv.indexOf("--runs") + 1] ?? 5) || 5;
  const outArg = argv.indexOf("--out") >= 0 ? argv[argv.indexOf("--out") + 1] : undefined;
  const dir = mkdtempSync(join(tmpdir(), "af-engine-memory-"));
  try {
    const self = join(repoRoot(), "dist", "bench", "engineMemory.js");
    const smol = join(modelsDir(), SMOLLM2);
    // 1. Vocabularies as metadata-only files.
    const meta = [...(await readTypedMetadata(await readGguf(smol)))].filter(([k]) => k.startsWith("tokenizer."));
    const files: Record<string, string> = { smollm2: join(dir, "smollm2.gguf"), "smollm2-no-merges": join(dir, "nomerges.gguf"), "512": join(dir, "512.gguf"), "32000": join(dir, "32000.gguf") };
    await writeVocabFile(files.smollm2!, meta);
    await writeVocabFile(files["smollm2-no-merges"]!, meta.map(([k, v]) => [k, k === "tokenizer.ggml.merges" ? strArr([]) : v]));
    for (const size of [512, 32000]) {
      const v = buildVocab(["t o"], ["<s>", "</s>"], size);
      await writeVocabFile(files[String(size)]!, tokenizerMetadata(v, { pre: "default", bos: v.special.get("<s>")!, eos: v.special.get("</s>")!, addBos: true }));
    }
    const vocab: Record<string, VocabSample & { samples: number[] }> = {};
    for (const [name, path] of Object.entries(files)) {
      const samples = Array.from({ length: runs }, () => JSON.parse(child([...NODE_FLAGS, self, "--vocab", path])) as VocabSample);
      vocab[name] = { ...samples[0]!, rssBytes: median(samples.map((s) => s.rssBytes)), samples: samples.map((s) => s.rssBytes) };
    }
    const [full, noMerges, small, large] = [vocab.smollm2!, vocab["smollm2-no-merges"]!, vocab["512"]!, vocab["32000"]!];
    const aloneToken = (noMerges.rssBytes - small.rssBytes) / (noMerges.tokens - small.tokens);
    const aloneMerge = (full.rssBytes - noMerges.rssBytes) / full.merges;
    const alone = (t: number, m: number) => t * aloneToken + m * aloneMerge;
    // 2. Budgeted runs; the first of each converts into this cache and is not counted.
    mkdirSync(join(dir, "models"));
    const tiny = join(dir, "models", "tiny.gguf");
    await synthesizeModel("small", GgmlType.Q4_0, tiny, { seed: 1 });
    const smolLink = join(dir, "models", SMOLLM2);
    symlinkSync(smol, smolLink);
    const runSets: Record<string, { model: string; dram: string; tokens: number; merges: number }> = {
      tiny: { model: tiny, dram: "64MB", tokens: 512, merges: 3 },
      "smollm2 50%": { model: smolLink, dram: "50%", tokens: full.tokens, merges: full.merges },
    };
    const runResults: Record<string, { residualBytes: number; samples: RunSample[] }> = {};
    for (const [name, r] of Object.entries(runSets)) {
      cliRun(r.model, r.dram, dir);
      const samples = Array.from({ length: runs }, () => cliRun(r.model, r.dram, dir));
      runResults[name] = { residualBytes: median(samples.map((s) => s.modelMemoryBytes - s.nativeBytes)), samples };
    }
    const [tinyRun, smolRun] = [runResults.tiny!.residualBytes, runResults["smollm2 50%"]!.residualBytes];
    const room = (smolRun - tinyRun) / (alone(full.tokens, full.merges) - alone(512, 1));
    const base = tinyRun - room * alone(512, 1);
    const [perToken, perMerge] = [room * aloneToken, room * aloneMerge];
    const result = {
      date: new Date().toISOString(), machine: machineInfo(), runs, nodeFlags: NODE_FLAGS,
      vocab, runsMeasured: runResults,
      fit: {
        aloneBytesPerToken: Math.round(aloneToken), aloneBytesPerMerge: Math.round(aloneMerge), room,
        bytesPerToken: Math.round(perToken), bytesPerMerge: Math.round(perMerge), baseBytes: Math.round(base),
        // The per-token bytes of tokenizers alone, checked on a vocabulary of other strings.
        check32000: { measuredBytes: large.rssBytes, predictedBytes: Math.round(small.rssBytes + aloneToken * (large.tokens - small.tokens)) },
      },
      inUse: { baseBytes: ENGINE_BASE_BYTES, bytesPerToken: ENGINE_BYTES_PER_TOKEN, bytesPerMerge: ENGINE_BYTES_PER_MERGE },
    };
    const m = (b: number) => (b / MiB).toFixed(2);
    console.log(table(["vocabulary", "tokens", "merges", "RSS kept (MiB, median)", "runs (MiB)"],
      Object.entries(vocab).map(([k, v]) => [k, String(v.tokens), String(v.merges), m(v.rssBytes), v.samples.map(m).join(" ")])));
    console.log(table(["run", "model memory (MiB)", "native (MiB)", "residual (MiB, median)"],
      Object.entries(runResults).map(([k, v]) => [k, v.samples.map((s) => m(s.modelMemoryBytes)).join(" "), v.samples.map((s) => m(s.nativeBytes)).join(" "), m(v.residualBytes)])));
    console.log(`tokenizers alone: ${Math.round(aloneToken)} B/token, ${Math.round(aloneMerge)} B/merge (32,000 tokens: measured ${m(large.rssBytes)}, ` +
      `predicted ${m(result.fit.check32000.predictedBytes)} MiB); in a run x${room.toFixed(2)}: ${Math.round(perToken)} B/token, ${Math.round(perMerge)} B/merge, base ${m(base)} MiB ` +
      `(in use: ${ENGINE_BYTES_PER_TOKEN}, ${ENGINE_BYTES_PER_MERGE}, ${m(ENGINE_BASE_BYTES)} MiB)`);
    const out = outArg ?? join(repoRoot(), "bench", "results", `engine-memory-${result.date.replace(/:/g, "-").slice(0, 19)}Z.json`);
    writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
    console.log(`wrote ${out}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main(process.argv.slice(2));
