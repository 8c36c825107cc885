// What schema-constrained decoding costs: SmolLM2 decode tok/s with and without a schema, on
// the same prompts, seeds and lengths with the engine's default sampling, runs alternating, medians.
// Also the one-off costs a first schema pays (the tokenizer's byte trie, masks computed while
// decoding) and the share of decode time spent masking. Issue 11's target: <= 10 % slower.
// Saves bench/results/structured-<date>.json. Run under the exclusive lock:
//   flock -x /tmp/af-bench.lock node dist/bench/structured.js
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Engine } from "../src/index.js";
import type { GenerateOptions, GenerationStats } from "../src/engine/types.js";
import type { JsonSchema } from "../src/structured/schema.js";
import { tokenTrie } from "../src/tokenizer/tokenTrie.js";
import { machineInfo } from "./lib/machine.js";
import { smollm2Model } from "./lib/models.js";
import { repoRoot } from "./lib/paths.js";
import { median } from "./lib/stats.js";

const TARGET_COST = 0.1;

const { values: args } = parseArgs({
  options: {
    runs: { type: "string", default: "5" },
    tokens: { type: "string", default: "128" },
    out: { type: "string" },
  },
});
const runs = Number(args.runs);
const maxTokens = Number(args.tokens);
const log = (s: string) => process.stderr.write(`${s}\n`);

const CASES: { name: string; prompt: string; schema: JsonSchema | "json" }[] = [
  {
    name: "person",
    prompt: "Describe a fictional person as JSON.",
    schema: {
      type: "object",
      properties: {
        name: { type: "string" }, age: { type: "integer" }, email: { type: "string" }, city: { type: "string" },
        hobbies: { type: "array", items: { type: "string" }, maxItems: 5 }, married: { type: "boolean" },
      },
      required: ["name", "age", "hobbies"],
    },
  },
  {
    name: "story",
    prompt: "Write a short story as JSON with a title and the story.",
    schema: { type: "object", properties: { title: { type: "string" }, story: { type: "string" } }, required: ["title", "story"] },
  },
  { name: "json_object", prompt: "List some fruits and their colors as a JSON object.", schema: "json" },
];

async function drain(gen: AsyncGenerator<unknown, GenerationStats, void>): Promise<GenerationStats> {
  for (;;) {
    const r = await gen.next();
    if (r.done === true) return r.value;
  }
}

const model = await smollm2Model();
if (model.path === undefined) throw new Error(`SmolLM2 is needed: ${model.reason}`);
const machine = machineInfo();
const engine = await Engine.load(model.path, {});
const t0 = performance.now();
tokenTrie(engine.tokenizer);
const trieMs = performance.now() - t0;
// Read now: a disposed engine refuses every getter.
const isa = engine.isa;
log(`${model.name}: ${isa}; token trie built in ${trieMs.toFixed(0)} ms`);
await drain(engine.generate("Warm up the engine.", { maxTokens: 16, seed: 1 }));

const results = [];
for (const c of CASES) {
  const free: GenerationStats[] = [];
  const constrained: GenerationStats[] = [];
  const probes: GenerationStats[] = [];
  for (let r = 0; r < runs; r++) {
    const seed = 100 + r;
    const chat = (o: GenerateOptions) => drain(engine.chat([{ role: "user", content: c.prompt }], { seed, maxTokens, ...o }));
    // A schema run ends with its value, often well before maxTokens, and a shorter run decodes
    // faster (less KV to attend to): an unmeasured schema run with this seed sets how many
    // tokens the free run decodes, so both speeds are over the same length.
    const probe = await chat({ schema: c.schema });
    probes.push(probe);
    // Alternate which goes first so drift on the machine falls on both.
    const order = r % 2 === 0 ? ["free", "schema"] : ["schema", "free"];
    for (const which of order) {
      if (which === "free") free.push(await chat({ stopAtEos: false, maxTokens: Math.max(2, probe.generatedTokens) }));
      else constrained.push(await chat({ schema: c.schema }));
    }
  }
  const freeTps = median(free.map((s) => s.decodeTokensPerSecond));
  const schemaTps = median(constrained.map((s) => s.decodeTokensPerSecond));
  const summary = {
    case: c.name,
    freeDecodeTokensPerSecond: freeTps,
    schemaDecodeTokensPerSecond: schemaTps,
    cost: 1 - schemaTps / freeTps,
    // The first schema run (a probe) computes the masks of the states it meets; later runs mostly reuse them.
    firstSchemaRun: { decodeTokensPerSecond: probes[0]!.decodeTokensPerSecond, ...probes[0]!.structured },
    maskShareOfDecode: median(constrained.map((s) => (s.structured?.maskSeconds ?? 0) / Math.max(1e-9, s.decodeSeconds))),
    schemaTokens: constrained.map((s) => s.generatedTokens),
    schemaStopReasons: constrained.map((s) => s.stopReason),
    freeRuns: free.map((s) => ({ tokens: s.generatedTokens, decodeTokensPerSecond: s.decodeTokensPerSecond })),
    schemaRuns: constrained.map((s) => ({ tokens: s.generatedTokens, decodeTokensPerSecond: s.decodeTokensPerSecond, ...s.structured })),
  };
  results.push(summary);
  log(`${c.name.padEnd(12)} free ${freeTps.toFixed(1)} tok/s | schema ${schemaTps.toFixed(1)} tok/s | cost ${(summary.cost * 100).toFixed(1)} % | masking ${(summary.maskShareOfDecode * 100).toFixed(2)} % of decode | first run ${summary.firstSchemaRun.masksComputed ?? 0} masks, ${((summary.firstSchemaRun.maskSeconds ?? 0) * 1000).toFixed(0)} ms`);
}
await engine.dispose();

const worst = Math.max(...results.map((r) => r.cost));
log(`worst cost ${(worst * 100).toFixed(1)} % (target <= ${TARGET_COST * 100} %): ${worst <= TARGET_COST ? "met" : "NOT met"}`);
const record = {
  bench: "structured",
  model: model.name,
  isa,
  runs,
  maxTokens,
  sampling: "engine defaults (temperature 0.8, top-k 40, top-p 0.95, min-p 0.05); seeds 100..",
  note: "in-process, one engine; schema runs end when the value is complete; each free run ignores EOS and decodes as many tokens as an unmeasured schema run with its seed did. Run under flock -x /tmp/af-bench.lock: no other build, test or benchmark ran during it (other helpers' idle shells and editors may have).",
  trieBuildMs: trieMs,
  targetCost: TARGET_COST,
  worstCost: worst,
  machine,
  results,
};
const out = args.out ?? join(repoRoot(), "bench", "results", `structured-${new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19)}Z.json`);
mkdirSync(join(out, ".."), { recursive: true });
writeFileSync(out, `${JSON.stringify(record, null, 2)}\n`);
log(`wrote ${out}`);
