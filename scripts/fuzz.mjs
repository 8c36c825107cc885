#!/usr/bin/env node
// Long fuzzing runs of the parser targets (test/fuzz/targets.ts; build first: npm run build).
//   node scripts/fuzz.mjs [--execs N] [--seed S] [--targets gguf,flash,tokenizer,chat,args]
// Runs the targets round-robin in batches from fresh seeds until N executions in all (default
// 100000), printing progress; exits 1 with the shrunk counterexample on the first finding.
import fc from "fast-check";
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { apply, mutation } from "../dist/test/fuzz/mutate.js";
import { argsTarget, chatTarget, flashTarget, ggufTarget, makeCorpus, tokenizerTarget } from "../dist/test/fuzz/targets.js";
import { readGguf } from "../dist/src/gguf/reader.js";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";

const { values } = parseArgs({ options: { execs: { type: "string", default: "100000" }, seed: { type: "string" }, targets: { type: "string", default: "gguf,flash,tokenizer,chat,args" } } });
const total = Number(values.execs);
if (!(Number.isInteger(total) && total > 0)) {
  console.error(`error: --execs ${values.execs}: expected a positive integer`);
  process.exit(2);
}
let seed = values.seed !== undefined ? Number(values.seed) : Date.now() % 2 ** 31;
const corpus = await makeCorpus();
const headerOf = async (bytes, name) => {
  const p = join(corpus.dir, name);
  await writeFile(p, bytes);
  return (await readGguf(p)).dataOffset;
};
const hot = await Promise.all(corpus.gguf.map((g) => headerOf(g.bytes, `seed-${g.name}.gguf`)));
const flashHot = await headerOf(corpus.flash, "seed.af.gguf");
const text = fc.oneof(fc.string({ unit: "binary", maxLength: 200 }), fc.string({ unit: "grapheme", maxLength: 80 }));
const msg = fc.record({ role: fc.oneof(fc.constantFrom("system", "user", "assistant"), fc.string({ maxLength: 10 })), content: fc.string({ unit: "binary", maxLength: 100 }) });
const props = {
  gguf: () => corpus.gguf.map((g, i) => fc.asyncProperty(mutation(g.bytes.length, hot[i]), (ops) => ggufTarget(corpus, apply(g.bytes, ops)).then(() => true))),
  flash: () => [fc.asyncProperty(mutation(corpus.flash.length, flashHot), (ops) => flashTarget(corpus, apply(corpus.flash, ops)).then(() => true))],
  tokenizer: () => [fc.asyncProperty(text, (s) => tokenizerTarget(corpus, s).then(() => true))],
  chat: () => [fc.asyncProperty(fc.array(msg, { maxLength: 6 }), (m) => chatTarget(corpus, m).then(() => true))],
  args: () => [fc.asyncProperty(fc.array(fc.string({ maxLength: 12 }), { maxLength: 8 }), (a) => argsTarget(a).then(() => true))],
};
const chosen = values.targets.split(",").map((t) => t.trim());
for (const t of chosen) {
  if (!(t in props)) {
    console.error(`error: --targets: unknown target "${t}" (known: ${Object.keys(props).join(", ")})`);
    process.exit(2);
  }
}
const all = chosen.flatMap((t) => props[t]().map((p) => [t, p]));
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
