// Tokenizer unit tests on hand-made vocabularies: no model file, no network.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { GgufValue } from "../src/gguf/types.js";
import { isActiveflowError } from "../src/errors.js";
import {
  BYTE_TO_CHAR, CHAR_TO_BYTE, GgufTokenizer, PreTokenizer, bpeMerge, bytesToUnicode, preTokenizerInfo, unicodeToBytes,
} from "../src/tokenizer/index.js";
import { mergeKey } from "../src/tokenizer/vocab.js";

const CHATML =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}" +
  "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

// A byte-level BPE vocab: the 256 byte chars, a few merges, two control tokens, one user-defined.
function tinyBpe(extra: Record<string, GgufValue> = {}): GgufTokenizer {
  const merges = ["Ġ w", "o r", "Ġw or", "l d", "Ġwor ld", "h e", "l l", "he ll", "hell o", "Ġ Ġ"];
  const merged = merges.map((m) => m.replace(" ", ""));
  const tokens = [...BYTE_TO_CHAR, ...merged, "<|im_start|>", "<|im_end|>", "<tool>"];
  const types = tokens.map((t) => (t.startsWith("<|") ? 3 : t === "<tool>" ? 4 : 1));
  const meta = new Map<string, GgufValue>([
    ["tokenizer.ggml.model", "gpt2"],
    ["tokenizer.ggml.pre", "smollm"],
    ["tokenizer.ggml.tokens", tokens],
    ["tokenizer.ggml.token_type", Int32Array.from(types)],
    ["tokenizer.ggml.merges", merges],
    ["tokenizer.ggml.bos_token_id", tokens.indexOf("<|im_start|>")],
    ["tokenizer.ggml.eos_token_id", tokens.indexOf("<|im_end|>")],
    ["tokenizer.chat_template", CHATML],
    ...Object.entries(extra),
  ]);
  return new GgufTokenizer(meta, "tiny-bpe.gguf");
}

// A SentencePiece vocab where scores decide the merges and é needs byte fallback.
function tinySpm(): GgufTokenizer {
  const entries: [string, number, number][] = [
    ["<unk>", 0, 2], ["<s>", 0, 3], ["</s>", 0, 3], ["<0x0A>", 0, 6], ["<0xC3>", 0, 6], ["<0xA9>", 0, 6],
    ["▁", -1, 1], ["h", -2, 1], ["e", -2, 1], ["l", -2, 1], ["o", -2, 1], ["w", -2, 1], ["r", -2, 1], ["d", -2, 1],
    ["▁h", -3, 1], ["ll", -4, 1], ["▁he", -5, 1], ["llo", -6, 1], ["▁hello", -7, 1],
    ["or", -3, 1], ["▁w", -3, 1], ["▁wor", -4, 1], ["ld", -5, 1], ["▁world", -6, 1],
    ["he", -1.5, 1], // outscores ▁h, so "▁hello" is built differently but must end the same
  ];
  const meta = new Map<string, GgufValue>([
    ["tokenizer.ggml.model", "llama"],
    ["tokenizer.ggml.tokens", entries.map((e) => e[0])],
    ["tokenizer.ggml.scores", Float32Array.from(entries.map((e) => e[1]))],
    ["tokenizer.ggml.token_type", Int32Array.from(entries.map((e) => e[2]))],
  ]);
  return new GgufTokenizer(meta, "tiny-spm.gguf");
}

const id = (tok: GgufTokenizer, text: string): number => {
  const i = tok.vocab.tokenToId.get(text);
  assert.ok(i !== undefined, `token ${text} in vocab`);
  return i;
};

test("GPT-2 byte map is a bijection with the known anchors", () => {
  assert.equal(BYTE_TO_CHAR[0x20], "Ġ");
  assert.equal(BYTE_TO_CHAR[0x0a], "Ċ");
  assert.equal(BYTE_TO_CHAR[0x41], "A");
  assert.equal(new Set(BYTE_TO_CHAR).size, 256);
  for (let b = 0; b < 256; b++) assert.equal(CHAR_TO_BYTE.get(BYTE_TO_CHAR[b] as string), b);
  const bytes = new TextEncoder().encode("é 😀\t");
  assert.deepEqual(unicodeToBytes(bytesToUnicode(bytes)), bytes);
});

test("BPE merges lowest rank first and leftmost on ties", () => {
  const ranks = new Map([[mergeKey("h", "e"), 0], [mergeKey("l", "l"), 1], [mergeKey("he", "ll"), 2], [mergeKey("hell", "o"), 3]]);
  assert.deepEqual(bpeMerge("hello", ranks), ["hello"]);
  assert.deepEqual(bpeMerge("hellxo", ranks), ["hell", "x", "o"]);
  assert.deepEqual(bpeMerge("aaa", new Map([[mergeKey("a", "a"), 0]])), ["aa", "a"]);
  assert.deepEqual(bpeMerge("", ranks), []);
  // Higher-ranked pair loses even when it comes first.
  const r2 = new Map([[mergeKey("b", "c"), 0], [mergeKey("a", "b"), 1]]);
  assert.deepEqual(bpeMerge("abc", r2), ["a", "bc"]);
});

test("pre-tokenizer splits like llama.cpp's regexes", () => {
  assert.deepEqual(new PreTokenizer("gpt2").split("Hello world's  test\n\nok  "),
    ["Hello", " world", "'s", " ", " test", "\n", "\n", "ok", "  "]);
  assert.deepEqual(new PreTokenizer("starcoder").split("abc 1234"), ["abc", " ", "1", "2", "3", "4"]);
  assert.deepEqual(new PreTokenizer("llama3").split("I'VE 12345\n\n  x"),
    ["I", "'VE", " ", "123", "45", "\n\n", " ", " x"]);
  assert.deepEqual(new PreTokenizer("qwen2").split("x12345"), ["x", "1", "2", "3", "4", "5"]);
  // U+0085 is whitespace for llama.cpp (not for JS \s): it joins the space run.
  assert.deepEqual(new PreTokenizer("gpt2").split("a \u0085 b"), ["a", " \u0085", " b"]);
  // Whole text survives any split.
  const s = "Ünïcödé 😀👨‍👩‍👧 中文 مرحبا\r\n\t1,234.5 don't";
  for (const f of ["default", "gpt2", "starcoder", "llama3", "qwen2", "qwen35", "tekken", "gpt-4o", "deepseek-llm", "deepseek-coder", "falcon", "bloom", "viking"]) {
    assert.equal(new PreTokenizer(f).split(s).join(""), s, f);
  }
});

test("pre-tokenizer names map to llama.cpp's families; unknown falls back to GPT-2", () => {
  assert.equal(preTokenizerInfo("smollm").family, "starcoder");
  assert.equal(preTokenizerInfo("llama-bpe").family, "llama3");
  assert.equal(preTokenizerInfo("llama-bpe").ignoreMerges, true);
  assert.equal(preTokenizerInfo("qwen2").family, "qwen2");
  assert.equal(preTokenizerInfo("smollm").cleanSpaces, false);
  assert.equal(preTokenizerInfo("gpt-2").cleanSpaces, true);
  assert.equal(preTokenizerInfo("surely-not-a-real-pre").family, "gpt2");
});

test("byte-level BPE encodes, decodes and honours add_bos_token", () => {
  const tok = tinyBpe();
  assert.deepEqual(tok.encode("hello world"), [id(tok, "hello"), id(tok, "Ġworld")]);
  assert.equal(tok.decode(tok.encode("hello world")), "hello world");
  assert.deepEqual(tok.encode("hello", { addSpecial: true }), [id(tok, "hello")], "gpt2 defaults to no BOS");
  const withBos = tinyBpe({ "tokenizer.ggml.add_bos_token": true });
  assert.deepEqual(withBos.encode("hello", { addSpecial: true }), [id(tok, "<|im_start|>"), id(tok, "hello")]);
  assert.deepEqual(tok.encode(""), []);
});

test("runs of many spaces merge in n log n and stay exact", () => {
  const tok = tinyBpe();
  const n = 30_000;
  const ids = tok.encode(" ".repeat(n) + "x");
  // n-1 spaces pair up leftmost first, the last space stays with "x" (" ?\p{L}+").
  const pairs = Math.floor((n - 1) / 2);
  assert.equal(ids.length, pairs + ((n - 1) % 2) + 2);
  assert.ok(ids.slice(0, pairs).every((i) => i === id(tok, "ĠĠ")));
  assert.equal(tok.decode(ids), " ".repeat(n) + "x");
});

test("special tokens: control only with parseSpecial, user-defined always", () => {
  const tok = tinyBpe();
  const start = id(tok, "<|im_start|>");
  const tool = id(tok, "<tool>");
  const parsed = tok.encode("<|im_start|>hello<tool>", { parseSpecial: true });
  assert.deepEqual(parsed, [start, id(tok, "hello"), tool]);
  const plain = tok.encode("<|im_start|>hello<tool>");
  assert.ok(!plain.includes(start), "control token not injected from plain text");
  assert.equal(plain[plain.length - 1], tool, "user-defined token still matched");
  assert.equal(tok.decode(plain), "<|im_start|>hello<tool>");
  assert.equal(tok.decode(parsed), "<|im_start|>hello<tool>");
  assert.equal(tok.decode(parsed, { skipSpecial: true }), "hello<tool>");
  assert.ok(tok.stopIds.has(id(tok, "<|im_end|>")));
  assert.ok(tok.isControl(start) && !tok.isControl(tool) && !tok.isControl(id(tok, "hello")));
});

test("tokenBytes lets a streaming decoder hold back split UTF-8", () => {
  const tok = tinyBpe();
  const ids = tok.encode("é😀");
  assert.equal(ids.length, 6, "two + four byte tokens");
  const dec = new TextDecoder();
  const seen = ids.map((i) => dec.decode(tok.tokenBytes(i), { stream: true }));
  assert.deepEqual(seen, ["", "é", "", "", "", "😀"]);
  assert.deepEqual(Array.from(tok.tokenBytes(ids[0] as number)), [0xc3]);
});

test("clean_spaces (gpt-2 pre) removes spaces before punctuation on decode, as llama.cpp", () => {
  const tok = tinyBpe({ "tokenizer.ggml.pre": "gpt-2" });
  assert.equal(tok.decode(tok.encode("a , b ' c 's d .")), "a, b'c's d.");
});

test("SentencePiece: score-ordered merges, space prefix, byte fallback, decode", () => {
  const tok = tinySpm();
  assert.equal(tok.bosId, 1);
  assert.equal(tok.eosId, 2);
  const hello = id(tok, "▁hello");
  const world = id(tok, "▁world");
  assert.deepEqual(tok.encode("hello world"), [hello, world]);
  assert.deepEqual(tok.encode("hello world", { addSpecial: true }), [1, hello, world], "add_bos defaults to true");
  assert.deepEqual(tok.encode("hé"), [id(tok, "▁h"), id(tok, "<0xC3>"), id(tok, "<0xA9>")]);
  assert.deepEqual(tok.encode("hello\n"), [hello, id(tok, "<0x0A>")]);
  // The leading space of the first piece is dropped (add_space_prefix)...
  assert.equal(tok.decode([hello, world]), "hello world");
  assert.equal(tok.decode(tok.encode("hé")), "hé");
  // ...but llama.cpp spends that strip on a leading BOS, so the space then stays.
  assert.equal(tok.decode([1, hello], { skipSpecial: true }), " hello");
  assert.equal(tok.decode([1, hello]), "<s> hello");
  assert.deepEqual(Array.from(tok.tokenBytes(id(tok, "<0xC3>"))), [0xc3]);
  assert.ok(tok.stopIds.has(2));
  // </s> in text becomes the token only with parseSpecial; the space prefix follows it.
  assert.deepEqual(tok.encode("</s>hello", { parseSpecial: true }), [2, hello]);
});

test("chat template renders ChatML with the generation prompt", () => {
  const tok = tinyBpe();
  const out = tok.applyChatTemplate(
    [{ role: "system", content: "Be brief." }, { role: "user", content: "Hi" }],
    { addGenerationPrompt: true },
  );
  assert.equal(out, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  assert.equal(tok.applyChatTemplate([{ role: "user", content: "x" }]), "<|im_start|>user\nx<|im_end|>\n");
});

test("errors: no chat template, bad ids, bad metadata", () => {
  assert.throws(() => tinySpm().applyChatTemplate([{ role: "user", content: "x" }]),
    (e) => isActiveflowError(e) && e.code === "CHAT_TEMPLATE" && /tiny-spm\.gguf.*no tokenizer\.chat_template/.test(e.message));
  assert.throws(() => tinyBpe().decode([999_999]),
    (e) => isActiveflowError(e) && e.code === "TOKENIZER" && /token id 999999 is out of range/.test(e.message));
  assert.throws(() => new GgufTokenizer(new Map<string, GgufValue>([["tokenizer.ggml.model", "bert"]])),
    (e) => isActiveflowError(e) && e.code === "TOKENIZER" && /tokenizer\.ggml\.model is "bert"/.test(e.message));
  assert.throws(() => new GgufTokenizer(new Map<string, GgufValue>([["tokenizer.ggml.model", "gpt2"], ["tokenizer.ggml.tokens", ["a"]]])),
    (e) => isActiveflowError(e) && /tokenizer\.ggml\.merges is missing/.test(e.message));
});
