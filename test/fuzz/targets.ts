// Fuzz targets for the parsers that read what users give us (issue 14): GGUF headers, the
// flash layout's header, tokenizers, the chat-template renderer and the CLI's arguments.
// A target gets one input; it passes when the code under test returns or throws a one-line
// ActiveflowError. Anything else (another exception, a multi-line message, an input slower
// than SLOW_MS, a heap that grows past the allocation bound) is a finding. The same targets run
// bounded in `npm test` (test/fuzz.test.ts) and long on demand (scripts/fuzz.mjs).
import { mkdtemp, rm, writeFile, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "../../src/cli/args.js";
import { isActiveflowError } from "../../src/errors.js";
import { convertToFlash } from "../../src/flash/convert.js";
import { headerChecksum, headerChecksumAt } from "../../src/flash/headerChecksum.js";
import { openFlashModel } from "../../src/flash/open.js";
import { readGguf } from "../../src/gguf/reader.js";
import { GgmlType } from "../../src/gguf/types.js";
import { readModelConfig } from "../../src/model/config.js";
import { buildTinyModel } from "../../src/synth/tinyModel.js";
import { createTokenizer } from "../../src/tokenizer/index.js";
import type { Tokenizer } from "../../src/tokenizer/types.js";
import { defaultBackend } from "../../src/backends/default.js";

// An input slower than this is a hang (issue 14: > 2 s per input).
export const SLOW_MS = 2000;
// Heap growth per input above which an allocation counts as unbounded (issue 14: > 10x the
// input or > 256 MiB; our inputs are < 1 MiB, so the absolute bound is the binding one).
export const ALLOC_BOUND_BYTES = 256 * 2 ** 20;

export type Outcome = "ok" | "rejected";

export class Finding extends Error {
  constructor(
    readonly target: string,
    message: string,
    readonly input: Uint8Array | string | readonly string[],
  ) {
    super(`${target}: ${message}`);
  }
}

// Runs one input: ok, a clean rejection, or a Finding.
export async function check(target: string, input: Uint8Array | string | readonly string[], fn: () => Promise<unknown> | unknown): Promise<Outcome> {
  const heap0 = process.memoryUsage().heapUsed;
  const t0 = performance.now();
  let outcome: Outcome = "ok";
  try {
    await fn();
  } catch (e) {
    if (!isActiveflowError(e)) throw new Finding(target, `threw ${(e as Error)?.name ?? typeof e}: ${String((e as Error)?.message ?? e).split("\n")[0]}`, input);
    if (e.message.includes("\n")) throw new Finding(target, `a multi-line error: ${JSON.stringify(e.message.slice(0, 200))}`, input);
    outcome = "rejected";
  }
  const ms = performance.now() - t0;
  if (ms > SLOW_MS) throw new Finding(target, `took ${ms.toFixed(0)} ms`, input);
  const grew = process.memoryUsage().heapUsed - heap0;
  if (grew > ALLOC_BOUND_BYTES) throw new Finding(target, `the heap grew by ${(grew / 2 ** 20).toFixed(0)} MiB`, input);
  return outcome;
}

// The seeds the mutators start from: a tiny GGUF of each tokenizer family and a flash file.
export interface Corpus {
  dir: string;
  // Each seed with its header's length (dataOffset), where mutations are aimed.
  gguf: { name: string; bytes: Uint8Array; header: number }[];
  flash: { bytes: Uint8Array; header: number };
  tokenizers: Tokenizer[];
  // Whether tokenizers[i]'s decode gives back any well-formed text it encoded: not with the
  // "default" pre-tokenizer, whose decode cleans spaces before punctuation as llama.cpp's does.
  roundTrips: boolean[];
  dispose(): Promise<void>;
}

export async function makeCorpus(): Promise<Corpus> {
  const dir = await mkdtemp(join(tmpdir(), "af-fuzz-"));
  const gguf: Corpus["gguf"] = [];
  const tokenizers: Tokenizer[] = [];
  const roundTrips: boolean[] = [];
  for (const arch of ["llama", "qwen2", "phi3"] as const) {
    roundTrips.push(arch === "qwen2");
    const path = join(dir, `${arch}.gguf`);
    await buildTinyModel(path, { arch, type: GgmlType.Q8_0, seed: 7 });
    const parsed = await readGguf(path);
    gguf.push({ name: arch, bytes: new Uint8Array(await readFile(path)), header: parsed.dataOffset });
    tokenizers.push(createTokenizer(parsed));
  }
  const flashPath = join(dir, "llama.af.gguf");
  await convertToFlash(defaultBackend(), join(dir, "llama.gguf"), flashPath, { groupSize: 1 });
  const flash = { bytes: new Uint8Array(await readFile(flashPath)), header: (await readGguf(flashPath)).dataOffset };
  return { dir, gguf, flash, tokenizers, roundTrips, dispose: () => rm(dir, { recursive: true, force: true }) };
}

// Writes a mutated file and parses it as GGUF, then as a model config and a tokenizer (encode,
// decode and the chat template), as `run` would before loading weights.
export async function ggufTarget(corpus: Corpus, bytes: Uint8Array): Promise<Outcome> {
  const path = join(corpus.dir, `in-${process.pid}.gguf`);
  await writeFile(path, bytes);
  return check("gguf", bytes, async () => {
    const f = await readGguf(path);
    readModelConfig(f);
    const t = createTokenizer(f);
    t.decode(t.encode("Hello, world! 123 ünïcödé", { addSpecial: true }));
    t.applyChatTemplate([{ role: "user", content: "hi" }], { addGenerationPrompt: true });
  });
}

// A mutated flash-layout file through openFlashModel (header, extents, scale planes, order).
// The header checksum rejects nearly every header mutation, so the file is then opened again
// with the checksum recomputed, as a forger would: the layout checks behind it stay fuzzed.
export async function flashTarget(corpus: Corpus, bytes: Uint8Array): Promise<Outcome> {
  const path = join(corpus.dir, `in-${process.pid}.af.gguf`);
  await writeFile(path, bytes);
  const first = await check("flash", bytes, () => openFlashModel(path));
  const fixed = await withHeaderChecksum(path, bytes);
  if (fixed === undefined) return first;
  await writeFile(path, fixed);
  return check("flash", fixed, () => openFlashModel(path));
}

// `bytes` with its header checksum recomputed, or undefined when the header does not parse
// that far or has no checksum.
async function withHeaderChecksum(path: string, bytes: Uint8Array): Promise<Uint8Array | undefined> {
  try {
    const f = await readGguf(path);
    if (f.dataOffset > bytes.length) return undefined;
    const header = Buffer.from(bytes.subarray(0, f.dataOffset));
    const at = headerChecksumAt(header, path, f.metadata.size);
    if (at === undefined) return undefined;
    const out = Buffer.from(bytes);
    out.writeUInt32LE(headerChecksum(header, at), at);
    return out;
  } catch {
    return undefined; // the first open said what it thought of it
  }
}

// Any text through every tokenizer: encoding and decoding never throw, and well-formed text
// round-trips where the decoder keeps spaces (a lone surrogate has no UTF-8 form: it becomes
// U+FFFD, as TextEncoder makes it).
export function tokenizerTarget(corpus: Corpus, text: string): Promise<Outcome> {
  return check("tokenizer", text, () => {
    for (const [i, t] of corpus.tokenizers.entries()) {
      const ids = t.encode(text, { addSpecial: false });
      const back = t.decode(ids);
      if (corpus.roundTrips[i] && !/\p{Surrogate}/u.test(text) && back !== text) throw new Error(`decode(encode(s)) != s: ${JSON.stringify(text.slice(0, 80))} -> ${JSON.stringify(back.slice(0, 80))}`);
      t.encode(text, { addSpecial: true, parseSpecial: true });
    }
  });
}

// Any messages through every model's chat template.
export function chatTarget(corpus: Corpus, messages: { role: string; content: string }[]): Promise<Outcome> {
  return check("chat", JSON.stringify(messages), () => {
    for (const t of corpus.tokenizers) t.applyChatTemplate(messages, { addGenerationPrompt: true });
  });
}

// Any argument vector through the CLI's parser.
export function argsTarget(argv: readonly string[]): Promise<Outcome> {
  return check("args", argv, () => parseArgs(argv));
}
