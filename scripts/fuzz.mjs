#!/usr/bin/env node
// Long fuzzing runs of the parser targets (test/fuzz/targets.ts; build first: npm run build).
//   node scripts/fuzz.mjs [--execs N] [--seed S] [--targets gguf,flash,tokenizer,chat,args]
// Runs the targets round-robin in batches from fresh seeds until N executions in all (default
// 100000), printing progress; exits 1 with the shrunk counterexample on the first finding.
import fc from "fast-check";
import { parseArgs } from "node:util";
import { fuzzProperties, TARGETS } from "../dist/test/fuzz/properties.js";
import { makeCorpus } from "../dist/test/fuzz/targets.js";

const { values } = parseArgs({ options: { execs: { type: "string", default: "100000" }, seed: { type: "string" }, targets: { type: "string", default: "gguf,flash,tokenizer,chat,args" } } });
const total = Number(values.execs);
if (!(Number.isInteger(total) && total > 0)) {
  console.error(`error: --execs ${values.execs}: expected a positive integer`);
  process.exit(2);
}
let seed = values.seed !== undefined ? Number(values.seed) : Date.now() % 2 ** 31;
const corpus = await makeCorpus();
const props = fuzzProperties(corpus);
const chosen = values.targets.split(",").map((t) => t.trim());
for (const t of chosen) {
  if (!TARGETS.includes(t)) {
    console.error(`error: --targets: unknown target "${t}" (known: ${TARGETS.join(", ")})`);
    process.exit(2);
  }
}
const all = chosen.flatMap((t) => props[t].map((p) => [t, p]));
// Each pass gives every target a batch, so a short run still reaches them all.
const BATCH = Math.max(1, Math.min(1000, Math.ceil(total / all.length)));
const counts = Object.fromEntries(chosen.map((t) => [t, 0]));
let done = 0;
const t0 = Date.now();
try {
  while (done < total) {
    for (const [name, p] of all) {
      const n = Math.min(BATCH, total - done);
      if (n <= 0) break;
      await fc.assert(p, { numRuns: n, seed: seed++ });
      counts[name] += n;
      done += n;
    }
    const s = (Date.now() - t0) / 1000;
    process.stderr.write(`\r${done}/${total} executions, ${(done / s).toFixed(0)}/s, ETA ${(((total - done) * s) / done).toFixed(0)} s   `);
  }
  process.stderr.write("\n");
  console.log(JSON.stringify({ executions: done, by_target: counts, seconds: (Date.now() - t0) / 1000, findings: 0 }));
} catch (e) {
  process.stderr.write("\n");
  console.error(`finding (seed ${seed - 1}): ${e.message}`);
  process.exitCode = 1;
} finally {
  await corpus.dispose();
}
