// Cache policy x record order on a real model (issue 9, items 3 and 4): the engine's own
// counters during greedy decode under a DRAM budget, for each cache policy (lfu, prefix,
// static) on a channel-order file and a hot-first file made by `activeflow reorder` (both with
// the activities measured on the calibration text). Decode only: the counters are reset after
// the prefill and the first token, so a pinned set's one-time fill is reported apart.
//
// One invocation runs one budget (one exclusive hold, a few minutes), appending its runs to
// --runs; --report merges the runs into bench/results/hotorder-<date>.{json,md} (medians over
// repetitions).
//
// Usage: flock -x /tmp/af-bench.lock node dist/bench/hotorder.js --files identity=a.af.gguf,hot=b.af.gguf
//          --dram 35% --runs runs.jsonl [--rep 0] [--tokens 128] [--policies lfu,prefix,static] [--prompts 2]
//        node dist/bench/hotorder.js --report --runs split=runs-split.jsonl,q8cols=runs-q8.jsonl [--note "what else ran"]
//        (one runs file per file layout, labelled)
import { appendFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { SITES } from "../src/backend/Backend.js";
import { Engine } from "../src/index.js";
import type { CachePolicy } from "../src/engine/types.js";
import type { GenerationStats } from "../src/engine/types.js";
import { machineInfo } from "./lib/machine.js";
import { repoRoot } from "./lib/paths.js";

const { values } = parseArgs({
  options: {
    files: { type: "string" },
    dram: { type: "string", default: "35%" },
    runs: { type: "string" },
    rep: { type: "string", default: "0" },
    tokens: { type: "string", default: "128" },
    policies: { type: "string", default: "lfu,prefix,static" },
    prompts: { type: "string", default: "2" },
    sparsity: { type: "string", default: "0.5" },
    report: { type: "boolean", default: false },
    note: { type: "string", default: "" },
  },
});
const log = (s: string) => process.stderr.write(`${s}\n`);
if (!values.runs) throw new Error("--runs <file.jsonl> is required");

interface Run {
  layout?: string; // the report's label of the runs file
  dram: string;
  order: string;
  file: string;
  policy: string;
  rep: number;
  prompt: number;
  promptTokens: number;
  decoded: number;
  decodeTokensPerSecond: number;
  cacheBytes: number;
  budgetBytes: number;
  lookups: number;
  hits: number;
  hitRate: number;
  hitRateBytes: number;
  hitRateBySite: Record<string, number>;
  bytesReadPerToken: number;
  activeBytesPerToken: number;
  readsPerToken: number;
  meanReadBytes: number;
  ioWaitPerToken: number;
  fillBytesRead: number;
  loadAverage: number[];
}

// Evaluation text, for measurement only: paragraphs of wiki.test.raw as prompts.
function prompts(n: number): string[] {
  const wiki = readFileSync(join(repoRoot(), "..", "shared", "data", "wikitext-2-raw", "wiki.test.raw"), "utf8");
  const paras = wiki.split("\n").filter((l) => l.trim().length > 300 && !l.trim().startsWith("="));
  return paras.slice(0, n).map((p) => p.trim().slice(0, 400));
}

type RawStats = {
  siteHits?: number[]; siteLookups?: number[]; bytesRead?: number; deviceReads?: number; activeBytes?: number;
  ioWaitSeconds?: number; fillBytesRead?: number; hits?: number; lookups?: number;
};

async function measure(file: string, order: string, policy: CachePolicy, dram: string, rep: number): Promise<Run[]> {
  const out: Run[] = [];
  // A context for the prompt and the decode (as `run` sizes it), so the KV cache leaves the budget to the weights.
  const e = await Engine.load(file, { dram, sparsity: Number(values.sparsity), threads: 1, cachePolicy: policy, contextLength: 256 });
  try {
    const model = (e as unknown as { model: { flashStats(reset?: boolean): RawStats } }).model;
    const rb = SITES.map((s) => e.flash!.extents.find((x) => x.site === s)!.recordBytes);
    for (const [pi, text] of prompts(Number(values.prompts)).entries()) {
      const ids = e.tokenizer.encode(text, { addSpecial: true });
      const gen = e.generate(ids, { maxTokens: Number(values.tokens), greedy: true, stopAtEos: false });
      let fill = 0;
      let first = true;
      let r = await gen.next();
      while (!r.done) {
        if (first) {
          fill = model.flashStats(false).fillBytesRead ?? 0;
          e.flashStats(true); // decode only from here
          first = false;
        }
        r = await gen.next();
      }
      const stats = r.value as GenerationStats;
      const f = model.flashStats(false);
      const n = Math.max(1, stats.generatedTokens - 1);
      const hits = f.siteHits ?? [0, 0, 0, 0];
      const looks = f.siteLookups ?? [0, 0, 0, 0];
      const hb = hits.reduce((a, h, s) => a + h * rb[s]!, 0);
      const lb = looks.reduce((a, l, s) => a + l * rb[s]!, 0);
      out.push({
        dram, order, file, policy, rep, prompt: pi, promptTokens: ids.length, decoded: n,
        decodeTokensPerSecond: stats.decodeTokensPerSecond,
        cacheBytes: e.plan?.cacheBytes ?? 0,
        budgetBytes: e.plan?.budgetBytes ?? 0,
        lookups: f.lookups ?? 0, hits: f.hits ?? 0,
        hitRate: (f.hits ?? 0) / Math.max(1, f.lookups ?? 0),
        hitRateBytes: hb / Math.max(1, lb),
        hitRateBySite: Object.fromEntries(SITES.map((s, i) => [s, hits[i]! / Math.max(1, looks[i]!)])),
        bytesReadPerToken: (f.bytesRead ?? 0) / n,
        activeBytesPerToken: (f.activeBytes ?? 0) / n,
        readsPerToken: (f.deviceReads ?? 0) / n,
        meanReadBytes: (f.bytesRead ?? 0) / Math.max(1, f.deviceReads ?? 0),
        ioWaitPerToken: (f.ioWaitSeconds ?? 0) / n,
        fillBytesRead: fill,
        loadAverage: machineInfo().loadAverage,
      });
      log(`${dram} ${order} ${policy} rep ${rep} prompt ${pi}: ${stats.decodeTokensPerSecond.toFixed(2)} tok/s, hit ${(100 * out.at(-1)!.hitRate).toFixed(1)} %, ` +
        `${(out.at(-1)!.bytesReadPerToken / 1e6).toFixed(2)} MB/token, mean read ${(out.at(-1)!.meanReadBytes / 1024).toFixed(1)} KiB`);
    }
  } finally {
    await e.dispose();
  }
  return out;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

if (values.report) {
  const runs = values.runs.split(",").flatMap((spec) => {
    const [layout, path] = spec.split("=") as [string, string];
    return readFileSync(path, "utf8").split("\n").filter((l) => l.trim()).map((l) => ({ ...(JSON.parse(l) as Run), layout }));
  });
  const keys = [...new Set(runs.map((r) => `${r.layout}|${r.dram}|${r.order}|${r.policy}`))].sort();
  const rows = keys.map((k) => {
    const [layout, dram, order, policy] = k.split("|");
    const rs = runs.filter((r) => r.layout === layout && r.dram === dram && r.order === order && r.policy === policy);
    const m = (f: (r: Run) => number) => median(rs.map(f));
    return {
      layout, dram, order, policy, runs: rs.length,
      cacheBytes: rs[0]!.cacheBytes, budgetBytes: rs[0]!.budgetBytes,
      hitRate: m((r) => r.hitRate), hitRateBytes: m((r) => r.hitRateBytes),
      hitRateBySite: Object.fromEntries(SITES.map((s) => [s, m((r) => r.hitRateBySite[s]!)])),
      bytesReadPerToken: m((r) => r.bytesReadPerToken), activeBytesPerToken: m((r) => r.activeBytesPerToken),
      readsPerToken: m((r) => r.readsPerToken), meanReadBytes: m((r) => r.meanReadBytes),
      ioWaitPerToken: m((r) => r.ioWaitPerToken), decodeTokensPerSecond: m((r) => r.decodeTokensPerSecond),
      decodeTokensPerSecondAll: rs.map((r) => r.decodeTokensPerSecond),
      fillBytesRead: m((r) => r.fillBytesRead),
    };
  });
  const date = new Date().toISOString();
  const stamp = date.replace(/[:]/g, "-").replace(/\.\d+Z$/, "Z");
  const result = {
    kind: "hotorder",
    date,
    machine: machineInfo(),
    conditions: values.note,
    setup: {
      model: "SmolLM2-135M-Instruct Q4_1, group size 1, calibrated (greedy, self-generated 16 prompts x 64 tokens); layouts: split = split Q4_1 records (today's default conversion), q8cols = Q8_0 columns (the cached conversion the cachesim study used)",
      activities: "activeflow reorder --sparsity 0.5 on the calibration text (self-generated, 1,172 tokens), never on wiki.test.raw",
      prompts: "paragraphs of wiki.test.raw (evaluation text, measurement only), first 400 characters",
      decode: `greedy, ${runs[0]?.decoded ?? 0} decoded tokens per prompt after the first, sparsity ${values.sparsity}, 1 thread, no preload; counters reset after the prefill and first token`,
    },
    rows,
    runs,
  };
  const base = join(repoRoot(), "bench", "results", `hotorder-${stamp}`);
  writeFileSync(`${base}.json`, `${JSON.stringify(result, null, 1)}\n`);
  const pct = (x: number) => `${(100 * x).toFixed(1)}`;
  const md = [
    `# Cache policy x record order, SmolLM2-135M Q4_1, sparsity ${values.sparsity}, decode (${date})`,
    "",
    values.note,
    "",
    "| layout | DRAM | order | policy | cache MB | hit % (channels) | hit % (bytes) | attn_in / attn_out / ffn_in / ffn_out hit % | MB read / token | active MB / token | reads / token | mean read KiB | io wait ms / token | decode tok/s (median; runs) |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ...rows.map((r) => `| ${r.layout} | ${r.dram} | ${r.order} | ${r.policy} | ${(r.cacheBytes / 1e6).toFixed(1)} | ${pct(r.hitRate)} | ${pct(r.hitRateBytes)} | ` +
      `${SITES.map((s) => pct(r.hitRateBySite[s]!)).join(" / ")} | ${(r.bytesReadPerToken / 1e6).toFixed(2)} | ${(r.activeBytesPerToken / 1e6).toFixed(2)} | ` +
      `${r.readsPerToken.toFixed(0)} | ${(r.meanReadBytes / 1024).toFixed(1)} | ${(1000 * r.ioWaitPerToken).toFixed(1)} | ` +
      `${r.decodeTokensPerSecond.toFixed(2)} (${r.decodeTokensPerSecondAll.map((x) => x.toFixed(2)).join(", ")}) |`),
    "",
  ].join("\n");
  writeFileSync(`${base}.md`, md);
  log(`${base}.json\n${base}.md`);
} else {
  if (!values.files) throw new Error("--files order=path,... is required");
  const files = values.files.split(",").map((x) => x.split("=") as [string, string]);
  const policies = values.policies!.split(",") as CachePolicy[];
  const rep = Number(values.rep);
  // Alternate the order of the files between repetitions.
  const seq = rep % 2 === 0 ? files : [...files].reverse();
  for (const [order, file] of seq) {
    for (const policy of rep % 2 === 0 ? policies : [...policies].reverse()) {
      for (const run of await measure(file, order, policy, values.dram!, rep)) appendFileSync(values.runs, `${JSON.stringify(run)}\n`);
    }
  }
}
