// Token-id parity with llama.cpp (through node-llama-cpp) on the real SmolLM2 vocabulary:
// wikitext, a table of tricky strings, special-token parsing and detokenization.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { readGguf } from "../src/gguf/reader.js";
import { createTokenizer, type Tokenizer } from "../src/tokenizer/index.js";

const MODEL = join(homedir(), ".cache/activeflow/models/SmolLM2-135M-Instruct.Q4_1.gguf");

// The repo root: the nearest parent holding package.json (works from test/ and dist/test/).
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const up = dirname(dir);
    if (up === dir) throw new Error("package.json not found above the test file");
    dir = up;
  }
  return dir;
}
const ROOT = repoRoot();
const WIKI = join(ROOT, "../shared/data/wikitext-2-raw/wiki.test.raw");
const TABLE = JSON.parse(readFileSync(join(ROOT, "test/data/tokenizer-strings.json"), "utf8")) as {
  strings: string[];
  special: string[];
};

interface RefModel {
  tokenize(text: string, special: boolean): readonly number[];
  detokenize(ids: readonly number[], special: boolean): string;
  dispose(): Promise<void>;
}
let ours: Tokenizer | undefined;
let ref: RefModel | undefined;
let llama: { dispose(): Promise<void> } | undefined;
let skipReason = "";

before(async () => {
  if (!existsSync(MODEL)) {
    skipReason = `model file ${MODEL} is absent`;
    return;
  }
  let nlc: typeof import("node-llama-cpp");
  try {
    nlc = await import("node-llama-cpp");
  } catch (e) {
    skipReason = `node-llama-cpp is not installed (${(e as Error).message})`;
    return;
  }
  ours = createTokenizer(await readGguf(MODEL));
  const l = await nlc.getLlama({ gpu: false, build: "never", logLevel: nlc.LlamaLogLevel.error });
  llama = l;
  const m = await l.loadModel({ modelPath: MODEL });
  ref = {
    tokenize: (text, special) => Array.from(m.tokenize(text, special), Number),
    detokenize: (ids, special) => m.detokenize(ids as never, special),
    dispose: () => m.dispose(),
  };
});

after(async () => {
  await ref?.dispose();
  await llama?.dispose();
});

// Asserts equal id lists; on failure names the first differing position with both windows.
function assertSameIds(got: readonly number[], want: readonly number[], label: string): void {
  const n = Math.max(got.length, want.length);
  for (let i = 0; i < n; i++) {
    if (got[i] !== want[i]) {
      const lo = Math.max(0, i - 4);
      assert.fail(
        `${label}: first difference at id #${i} (lengths ours ${got.length}, llama.cpp ${want.length})\n` +
          `  ours:      [${got.slice(lo, i + 6).join(", ")}]\n  llama.cpp: [${want.slice(lo, i + 6).join(", ")}]`,
      );
    }
  }
}

const show = (s: string) => JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}...` : s);

test("wikitext (first 20,000 chars) encodes to llama.cpp's ids", (t) => {
  if (ours === undefined || ref === undefined) return t.skip(skipReason);
  if (!existsSync(WIKI)) return t.skip(`${WIKI} is absent`);
  const text = readFileSync(WIKI, "utf8").slice(0, 20_000);
  const t0 = performance.now();
  const got = ours.encode(text);
  t.diagnostic(`encoded ${text.length} chars into ${got.length} ids in ${(performance.now() - t0).toFixed(0)} ms`);
  assertSameIds(got, ref.tokenize(text, false), "wikitext");
  assert.equal(ours.decode(got), text);
});

test("tricky strings encode to llama.cpp's ids and round-trip", (t) => {
  if (ours === undefined || ref === undefined) return t.skip(skipReason);
  for (const s of TABLE.strings) {
    const got = ours.encode(s);
    assertSameIds(got, ref.tokenize(s, false), show(s));
    assert.equal(ours.decode(got), s, `decode(encode(${show(s)}))`);
    assert.equal(ours.decode(got), ref.detokenize(got, false), `decode vs llama.cpp for ${show(s)}`);
  }
});

test("special tokens parse like llama.cpp with parseSpecial, and stay text without it", (t) => {
  if (ours === undefined || ref === undefined) return t.skip(skipReason);
  for (const s of TABLE.special) {
    const withSpecial = ours.encode(s, { parseSpecial: true });
    assertSameIds(withSpecial, ref.tokenize(s, true), `parseSpecial ${show(s)}`);
    assert.equal(ours.decode(withSpecial), s);
    assert.equal(ours.decode(withSpecial), ref.detokenize(withSpecial, true));
    assert.equal(ours.decode(withSpecial, { skipSpecial: true }), ref.detokenize(withSpecial, false));
    const plain = ours.encode(s);
    assertSameIds(plain, ref.tokenize(s, false), `plain ${show(s)}`);
    assert.equal(ours.decode(plain), s);
  }
});

test("single ids detokenize like llama.cpp", (t) => {
  if (ours === undefined || ref === undefined) return t.skip(skipReason);
  const ids = [0, 1, 2, 3, 17, 198, 216, 255, 256, 1000, 4455, 20000, 49151];
  for (const id of ids) {
    for (const special of [false, true]) {
      assert.equal(ours.decode([id], { skipSpecial: !special }), ref.detokenize([id], special), `id ${id} special=${special}`);
    }
  }
  assert.equal(ours.decode(ids), ref.detokenize(ids, true));
});

test("SmolLM2 metadata: stop ids, BOS flag and the chat template", (t) => {
  if (ours === undefined) return t.skip(skipReason);
  assert.equal(ours.bosId, 1);
  assert.equal(ours.eosId, 2);
  assert.ok(ours.stopIds.has(2), "<|im_end|> (eos) stops");
  assert.ok(ours.stopIds.has(0), "<|endoftext|> stops");
  assert.deepEqual(ours.encode("Hi", { addSpecial: true }), ours.encode("Hi"), "add_bos_token is false");
  const prompt = ours.applyChatTemplate([{ role: "user", content: "Hi" }], { addGenerationPrompt: true });
  assert.ok(prompt.startsWith("<|im_start|>system\n"), prompt);
  assert.ok(prompt.endsWith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"), prompt);
});
