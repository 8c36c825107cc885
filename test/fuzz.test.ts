// Bounded fuzzing in CI (issue 14): fast-check drives each parser target of test/fuzz/targets.ts
// from fixed seeds, so a run is deterministic; `node scripts/fuzz.mjs` runs the same targets for
// as long as asked with fresh seeds. A counterexample fast-check finds (shrunk) fails the test
// with its input; a fixed one becomes a regression case below.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { apply } from "./fuzz/mutate.js";
import { fuzzProperties } from "./fuzz/properties.js";
import { ggufTarget, makeCorpus, tokenizerTarget, type Corpus } from "./fuzz/targets.js";

const RUNS = 300;
let corpus: Corpus;
let props: ReturnType<typeof fuzzProperties>;

before(async () => {
  corpus = await makeCorpus();
  props = fuzzProperties(corpus);
});

after(() => corpus?.dispose());

test("GGUF header: mutated files load or fail with a one-line ActiveflowError", async () => {
  for (const [i, p] of props.gguf.entries()) await fc.assert(p, { numRuns: RUNS, seed: 1000 + i });
});

test("flash layout header: mutated files open or fail with a one-line ActiveflowError", async () => {
  await fc.assert(props.flash[0]!, { numRuns: RUNS, seed: 2000 });
});

test("tokenizers: any text encodes, and decodes back to itself", async () => {
  await fc.assert(props.tokenizer[0]!, { numRuns: RUNS * 2, seed: 3000 });
});

test("chat templates: any messages render or fail with a one-line ActiveflowError", async () => {
  await fc.assert(props.chat[0]!, { numRuns: RUNS, seed: 4000 });
});

test("CLI arguments: any argument vector parses or fails with a one-line ActiveflowError", async () => {
  await fc.assert(props.args[0]!, { numRuns: RUNS * 3, seed: 5000 });
});

// Regressions: inputs fuzzing found, kept as fixed cases.
test("regression: a GGUF key with control characters and no end gives a one-line, bounded error", async () => {
  // Found by the GGUF target (seed 1000): a zero byte inserted into a key's length field made
  // the next key swallow the binary that followed, newlines included, into its error message.
  const input = apply(corpus.gguf[0]!.bytes, [{ k: "insert", at: 3697, bytes: Uint8Array.from([0]) }, { k: "flip", at: 3459, bit: 0 }]);
  assert.equal(await ggufTarget(corpus, input), "rejected");
});

test("regression: the default pre-tokenizer's decode cleans the space before punctuation, as llama.cpp's does", async () => {
  // Found by the long run (seed 20261340): " !" decodes to "!" with tokenizer.ggml.pre
  // "default" (llama.cpp's clean_spaces); the qwen2 pre-tokenizer keeps it.
  assert.equal(corpus.tokenizers[0]!.decode(corpus.tokenizers[0]!.encode(" !")), "!");
  assert.equal(corpus.tokenizers[1]!.decode(corpus.tokenizers[1]!.encode(" !")), " !");
  assert.equal(await tokenizerTarget(corpus, " !"), "ok");
});
