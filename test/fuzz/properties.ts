// The fast-check properties over the fuzz targets, one list per target, shared by the bounded CI
// run (test/fuzz.test.ts, fixed seeds) and the long runs (scripts/fuzz.mjs, fresh seeds).
import fc from "fast-check";
import { apply, mutation } from "./mutate.js";
import { argsTarget, chatTarget, flashTarget, ggufTarget, tokenizerTarget, type Corpus } from "./targets.js";

export const TARGETS = ["gguf", "flash", "tokenizer", "chat", "args"] as const;
export type TargetName = (typeof TARGETS)[number];

// Words the CLI knows, edge values, and any short string.
const cliWord = fc.oneof(
  fc.constantFrom("run", "chat", "convert", "calibrate", "eval", "fetch", "cache", "ls", "rm", "prune", "synth", "inspect", "tokenize", "reorder", "distill", "help",
    "--dram", "--sparsity", "-n", "-p", "--ctx", "--json", "--threads", "--stop", "-f", "-", "--", "--help", "--seed", "--temp", "--cache-policy", "--read-gap", "--max-sparsity",
    "35%", "0.5", "auto", "-1", "1e309", "NaN", "512MB", "0", "x", ""),
  fc.string({ maxLength: 12 }),
);
const text = fc.oneof(fc.string({ unit: "binary", maxLength: 200 }), fc.string({ unit: "grapheme", maxLength: 80 }), fc.constantFrom("<|im_start|>", "<s>", "</s>", " \n\t ", "\u0000", "\ud800"));
const message = fc.record({ role: fc.oneof(fc.constantFrom("system", "user", "assistant", "tool"), fc.string({ maxLength: 10 })), content: fc.string({ unit: "binary", maxLength: 100 }) });

// One list of properties per target (gguf: one per seed file).
export function fuzzProperties(corpus: Corpus) {
  const ok = () => true;
  return {
    gguf: corpus.gguf.map((g) => fc.asyncProperty(mutation(g.bytes.length, g.header), (ops) => ggufTarget(corpus, apply(g.bytes, ops)).then(ok))),
    flash: [fc.asyncProperty(mutation(corpus.flash.bytes.length, corpus.flash.header), (ops) => flashTarget(corpus, apply(corpus.flash.bytes, ops)).then(ok))],
    tokenizer: [fc.asyncProperty(text, (s) => tokenizerTarget(corpus, s).then(ok))],
    chat: [fc.asyncProperty(fc.array(message, { maxLength: 6 }), (m) => chatTarget(corpus, m).then(ok))],
    args: [fc.asyncProperty(fc.array(cliWord, { maxLength: 8 }), (argv) => argsTarget(argv).then(ok))],
  } satisfies Record<TargetName, unknown[]>;
}
