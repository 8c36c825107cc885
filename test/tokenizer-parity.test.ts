// Token-id parity with llama.cpp (through node-llama-cpp) on the real SmolLM2 vocabulary:
// wikitext, a table of tricky strings, special-token parsing and detokenization.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { readGguf } from "../src/gguf/reader.js";
import { createTokenizer, type Tokenizer } from "../src/tokenizer/index.js";
import { REPO_ROOT } from "./helpers/repo.js";

const MODEL = join(homedir(), ".cache/activeflow/models/SmolLM2-135M-Instruct.Q4_1.gguf");

const ROOT = REPO_ROOT;
const WIKI = join(ROOT, "../shared/data/wikitext-2-raw/wiki.test.raw");
const TABLE = JSON.parse(readFileSync(join(ROOT, "test/data/tokenizer-strings.json"), "utf8")) as {
  strings: string[];
  special: string[];
};

// node-llama-cpp ships llama.cpp's source as a git bundle, including its vocab-only test
// GGUFs (models/ggml-vocab-*.gguf); they give SentencePiece and Llama 3 / Qwen 2 parity.
const BUNDLE = join(ROOT, "node_modules/node-llama-cpp/llama/gitRelease.bundle");
const VOCABS = ["llama-spm", "phi-3", "llama-bpe", "qwen2"];

// Extracts models/ggml-vocab-<name>.gguf (and its .inp strings) once into the temp dir.
function bundledVocab(name: string): { path: string; inputs: string[] } | string {
  if (!existsSync(BUNDLE)) return `${BUNDLE} is absent`;
  const dir = join(tmpdir(), `activeflow-llama-vocab-${statSync(BUNDLE).size}`);
  const file = `ggml-vocab-${name}.gguf`;
  try {
    if (!existsSync(join(dir, file))) {
      const git = join(dir, "git");
      if (!existsSync(join(git, "refs/heads/v"))) {
        mkdirSync(git, { recursive: true });
        execFileSync("git", ["init", "-q", "--bare", git]);
        execFileSync("git", ["-C", git, "fetch", "-q", BUNDLE, "HEAD:refs/heads/v"], { stdio: "ignore" });
      }
      for (const f of [`${file}.inp`, file]) {
        const bytes = execFileSync("git", ["-C", git, "show", `v:models/${f}`], { maxBuffer: 1 << 26 });
        writeFileSync(join(dir, `${f}.tmp`), bytes);
        renameSync(join(dir, `${f}.tmp`), join(dir, f));
      }
    }
  } catch (e) {
    return `could not extract ${file} from ${BUNDLE} with git: ${(e as Error).message}`;
  }
  const inputs = readFileSync(join(dir, `${file}.inp`), "utf8").split("\n__ggml_vocab_test__\n");
  return { path: join(dir, file), inputs };
}

interface RefModel {
  tokenize(text: string, special: boolean): readonly number[];
  detokenize(ids: readonly number[], special: boolean): string;
  dispose(): Promise<void>;
}
let ours: Tokenizer | undefined;
let ref: RefModel | undefined;
let llama: import("node-llama-cpp").Llama | undefined;
let skipReason = ""; // why the SmolLM2 tests skip
let llamaSkipReason = ""; // why the bundled-vocab tests skip

before(async () => {
  let nlc: typeof import("node-llama-cpp");
  try {
    nlc = await import("node-llama-cpp");
    // Vocab-only loads print a harmless "missing tensor" error before falling back; hide it.
    llama = await nlc.getLlama({ gpu: false, build: "never", logLevel: nlc.LlamaLogLevel.disabled });
  } catch (e) {
    skipReason = llamaSkipReason = `node-llama-cpp is not usable (${(e as Error).message})`;
    return;
  }
  if (!existsSync(MODEL)) {
    skipReason = `model file ${MODEL} is absent`;
    return;
  }
  ours = createTokenizer(await readGguf(MODEL));
  const m = await llama.loadModel({ modelPath: MODEL, vocabOnly: true });
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
    // Lone surrogates come back as U+FFFD, as any UTF-8 round trip gives them.
    assert.equal(ours.decode(got), Buffer.from(s).toString(), `decode(encode(${show(s)}))`);
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

for (const name of VOCABS) {
  test(`llama.cpp test vocab ${name}: ids, BOS/EOS and text match`, async (t) => {
    if (llama === undefined) return t.skip(llamaSkipReason);
    const vocab = bundledVocab(name);
    if (typeof vocab === "string") return t.skip(vocab);
    const tok = createTokenizer(await readGguf(vocab.path));
    const m = await llama.loadModel({ modelPath: vocab.path, vocabOnly: true });
    try {
      const wiki = existsSync(WIKI) ? [readFileSync(WIKI, "utf8").slice(0, 5_000)] : [];
      for (const s of [...wiki, ...TABLE.strings, ...vocab.inputs]) {
        const want = Array.from(m.tokenize(s, false), Number);
        assertSameIds(tok.encode(s), want, `${name} ${show(s)}`);
        if (m.tokens.shouldPrependBosToken) want.unshift(Number(m.tokens.bos));
        if (m.tokens.shouldAppendEosToken) want.push(Number(m.tokens.eos));
        assertSameIds(tok.encode(s, { addSpecial: true }), want, `${name} addSpecial ${show(s)}`);
        assert.equal(tok.decode(want), m.detokenize(want as never, true), `${name} decode ${show(s)}`);
        assert.equal(tok.decode(want, { skipSpecial: true }), m.detokenize(want as never, false), `${name} decode ${show(s)}`);
      }
      for (const s of TABLE.special) {
        assertSameIds(tok.encode(s, { parseSpecial: true }), Array.from(m.tokenize(s, true), Number), `${name} special ${show(s)}`);
      }
    } finally {
      await m.dispose();
    }
  });
}
