// Schema-constrained decoding: every output parses and validates against its schema (checked
// by ajv, an independent validator), sampling at temperature 1 from random logits on
// SmolLM2's 49k vocabulary, from a tiny random model through the engine, and from SmolLM2
// itself; unsupported schemas fail in one line naming the field.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Engine } from "../src/index.js";
import { Rng } from "../src/engine/rng.js";
import { Sampler } from "../src/engine/sampler.js";
import { isActiveflowError } from "../src/errors.js";
import { readGguf } from "../src/gguf/reader.js";
import { JsonConstraint, JsonGrammar } from "../src/structured/constraint.js";
import { compileJsonSchema, type JsonSchema } from "../src/structured/schema.js";
import { buildTinyModel } from "../src/synth/tinyModel.js";
import { createTokenizer } from "../src/tokenizer/index.js";
import { tokenTrie } from "../src/tokenizer/tokenTrie.js";
import type { Tokenizer } from "../src/tokenizer/types.js";
import { runCli } from "./helpers/cli.js";
import { validator } from "./helpers/jsonValidator.js";
import { findSmolLM2 } from "./helpers/smollm2.js";


const SCHEMAS: [string, JsonSchema | "json"][] = [
  ["flat object", {
    type: "object",
    properties: { name: { type: "string" }, age: { type: "integer" }, score: { type: "number" }, ok: { type: "boolean" }, none: { type: "null" } },
    required: ["name", "age", "score", "ok", "none"],
    additionalProperties: false,
  }],
  ["optional properties", { type: "object", properties: { a: { type: "string" }, b: { type: "integer" }, c: { type: "boolean" } }, required: ["b"] }],
  ["nested objects and arrays", {
    type: "object",
    properties: {
      user: { type: "object", properties: { id: { type: "integer" }, tags: { type: "array", items: { type: "string" }, maxItems: 3 } }, required: ["id", "tags"] },
      meta: { type: "object", properties: { created: { type: "string" }, scores: { type: "array", items: { type: "number" }, maxItems: 2 } } },
    },
    required: ["user"],
  }],
  ["enums and consts with escapes and unicode", {
    type: "object",
    properties: {
      color: { enum: ["red", "green", "blue"] },
      tricky: { enum: ["a\"b", "back\\slash", "new\nline", "é🙂", 12, 1.5, null, true, { k: [1, 2] }] },
      version: { const: "1.0" },
    },
    required: ["color", "tricky", "version"],
  }],
  ["array bounds", { type: "array", items: { type: "integer" }, minItems: 2, maxItems: 4 }],
  ["tuple", { type: "array", prefixItems: [{ type: "string" }, { type: "number" }], items: false, minItems: 2 }],
  ["anyOf", { anyOf: [{ type: "string" }, { type: "object", properties: { n: { type: "number" } }, required: ["n"] }, { type: "array", items: { type: "boolean" }, maxItems: 2 }] }],
  ["oneOf of distinct types", { type: "object", properties: { v: { oneOf: [{ type: "string" }, { type: "integer" }, { type: "null" }] } }, required: ["v"] }],
  ["type list", { type: ["string", "null"] }],
  ["recursive $ref", {
    $defs: { node: { type: "object", properties: { value: { type: "integer" }, children: { type: "array", items: { $ref: "#/$defs/node" }, maxItems: 2 } }, required: ["value"] } },
    $ref: "#/$defs/node",
  }],
  ["free-form map", { type: "object", additionalProperties: { type: "number" } }],
  ["json object mode", "json"],
  ["any value", true],
  ["string", { type: "string", description: "annotations are ignored" }],
  ["number", { type: "number" }],
];

// Parses `text` and checks it against `schema`; fails the test with the text otherwise.
function assertValid(schema: JsonSchema | "json", text: string, what: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    assert.fail(`${what}: output does not parse (${(e as Error).message}): ${JSON.stringify(text)}`);
  }
  const err = validator(schema)(value);
  assert.equal(err, undefined, `${what}: ${JSON.stringify(text)} is invalid: ${err}`);
  return value;
}

// The engine's loop without a model: logits drawn from `rng` (plus `bias`), sampled at
// temperature 1 over the whole vocabulary, masked by the constraint.
function randomWalk(grammar: JsonGrammar, tok: Tokenizer, seed: number, maxTokens: number, bias?: Float32Array): { text: string; ended: boolean } {
  const rng = new Rng(seed);
  const sampler = new Sampler({ temperature: 1, topK: 0, topP: 1, minP: 0, seed });
  const c = new JsonConstraint(grammar);
  const logits = new Float32Array(grammar.nVocab);
  const ids: number[] = [];
  for (let i = 0; i < maxTokens; i++) {
    for (let v = 0; v < logits.length; v++) logits[v] = rng.nextFloat() * 4 + (bias ? bias[v]! : 0);
    const id = c.choose(sampler.sample(c.apply(logits, maxTokens - i - 1), ids), logits);
    if (tok.stopIds.has(id)) return { text: tok.decode(ids), ended: true };
    c.accept(id);
    ids.push(id);
    if (c.done) return { text: tok.decode(ids), ended: true };
  }
  return { text: tok.decode(ids), ended: false };
}

const BAD: [JsonSchema, string][] = [
  [{ type: "string", minLength: 3 }, 'schema at /minLength: keyword "minLength" is not supported'],
  [{ type: "object", properties: { age: { type: "number", minimum: 0 } } }, "schema at /properties/age/minimum: keyword"],
  [{ type: "string", pattern: "a+" }, "schema at /pattern: keyword"],
  [{ type: "string", format: "date" }, "schema at /format: keyword"],
  [{ type: "strin" }, 'schema at /type: unknown type "strin"'],
  [{ enum: [] }, "schema at /enum: enum must be a non-empty array"],
  [{ type: "integer", enum: ["a"] }, "schema at /enum: no enum value has an allowed type"],
  [{ oneOf: [{ type: "integer" }, { type: "number" }] }, "schema at /oneOf: options 0 and 1 may both match"],
  [{ $ref: "#/$defs/missing" }, "schema at /$ref: reference #/$defs/missing points to nothing"],
  [{ $ref: "https://example.com/s.json" }, "schema at /$ref: only local references"],
  [{ type: "object", properties: { self: { $ref: "#" } }, required: ["self"] }, "schema at /: the schema has no finite value"],
  [{ type: "array", minItems: 3, maxItems: 1 }, "schema at /maxItems: maxItems 1 is below minItems 3"],
  [{ type: "object", required: ["x"] }, 'schema at /required: required property "x" has no schema'],
  [{ type: "array", items: [{ type: "string" }] }, "schema at /items: items as an array"],
  [{ allOf: [{ type: "string" }, { type: "string" }] }, "schema at /allOf: allOf is supported with exactly one schema"],
  [{ type: "object", properties: { a: false } }, "schema at /properties/a: the schema false allows no value"],
  [{ $ref: "#/$defs/a", type: "object", $defs: { a: {} } }, 'schema at /type: "type" beside "$ref" is not supported'],
  [{ type: "array", uniqueItems: true }, "schema at /uniqueItems: keyword"],
];

test("unsupported or impossible schemas throw BAD_SCHEMA in one line naming the field", () => {
  for (const [schema, want] of BAD) {
    assert.throws(() => compileJsonSchema(schema), (e: unknown) => {
      assert.ok(isActiveflowError(e) && e.code === "BAD_SCHEMA", `${JSON.stringify(schema)}: ${String(e)}`);
      assert.ok(e.message.startsWith(want), `${JSON.stringify(schema)}: got "${e.message}", want "${want}..."`);
      assert.ok(!e.message.includes("\n"));
      return true;
    });
  }
  // The source names the file in the CLI's messages.
  assert.throws(() => compileJsonSchema({ type: "string", maxLength: 2 }, "person.json"), /^ActiveflowError: person\.json at \/maxLength: /);
  // Every schema the other tests use compiles.
  for (const [, schema] of SCHEMAS) compileJsonSchema(schema);
});

const smol = await findSmolLM2();

test("random logits on the SmolLM2 vocabulary: every walk is valid JSON for its schema", { skip: smol.reason }, async () => {
  const tok = createTokenizer(await readGguf(smol.path!));
  const trie = tokenTrie(tok);
  for (const [name, schema] of SCHEMAS) {
    const grammar = new JsonGrammar(compileJsonSchema(schema), trie, [...tok.stopIds], tok.vocabSize);
    for (let seed = 1; seed <= 6; seed++) {
      // 64 tokens are above every schema's shortest value (the flat object's is 50 bytes).
      const { text, ended } = randomWalk(grammar, tok, seed, 64);
      assert.ok(ended, `${name}, seed ${seed}: the value did not close within 64 tokens: ${JSON.stringify(text)}`);
      assertValid(schema, text, `${name}, seed ${seed}`);
    }
  }
});

test("strings with escapes and multi-byte UTF-8 split across tokens stay valid", { skip: smol.reason }, async () => {
  const tok = createTokenizer(await readGguf(smol.path!));
  const trie = tokenTrie(tok);
  const schema: JsonSchema = { type: "object", properties: { s: { type: "string" }, t: { type: "array", items: { type: "string" }, maxItems: 3 } }, required: ["s", "t"] };
  const grammar = new JsonGrammar(compileJsonSchema(schema), trie, [...tok.stopIds], tok.vocabSize);
  // Bias toward tokens holding a backslash, and toward tokens with bytes >= 0x80 (many are a
  // part of a character: the automaton must hold the UTF-8 sequence open across tokens).
  for (const [what, pick, want] of [
    ["escapes", (b: Uint8Array) => b.includes(0x5c), /\\/],
    ["non-ASCII", (b: Uint8Array) => b.some((x) => x >= 0x80), /[^\x00-\x7f]/],
  ] as const) {
    const bias = new Float32Array(tok.vocabSize);
    for (let id = 0; id < tok.vocabSize; id++) if (pick(trie.bytes[id]!)) bias[id] = 6;
    let seen = 0;
    for (let seed = 1; seed <= 8; seed++) {
      const { text, ended } = randomWalk(grammar, tok, seed, 64, bias);
      assert.ok(ended, `${what}, seed ${seed}: not closed: ${JSON.stringify(text)}`);
      const value = assertValid(schema, text, `${what}, seed ${seed}`) as { s: string; t: string[] };
      assert.ok(!text.includes("\uFFFD"), `${what}, seed ${seed}: a broken UTF-8 sequence in ${JSON.stringify(text)}`);
      if (want.test(what === "escapes" ? text : value.s + value.t.join(""))) seen++;
    }
    assert.ok(seen >= 4, `${what}: only ${seen} of 8 outputs hold any`);
  }
});

test("the token budget closes the value in time; a budget below the shortest value ends it unfinished", { skip: smol.reason }, async () => {
  const tok = createTokenizer(await readGguf(smol.path!));
  const trie = tokenTrie(tok);
  const schema: JsonSchema = {
    type: "object",
    properties: { title: { type: "string" }, items: { type: "array", items: { type: "object", properties: { k: { type: "string" } }, required: ["k"] }, minItems: 2 } },
    required: ["title", "items"],
  };
  const compiled = compileJsonSchema(schema);
  // {"title":"","items":[{"k":""},{"k":""}]} is the shortest value: 40 bytes.
  assert.equal(compiled.root.minLen, 40);
  const grammar = new JsonGrammar(compiled, trie, [...tok.stopIds], tok.vocabSize);
  for (const budget of [40, 45, 60]) {
    for (let seed = 1; seed <= 4; seed++) {
      const { text, ended } = randomWalk(grammar, tok, seed, budget);
      assert.ok(ended, `budget ${budget}, seed ${seed}: ${JSON.stringify(text)}`);
      assertValid(schema, text, `budget ${budget}, seed ${seed}`);
    }
  }
  const short = randomWalk(grammar, tok, 1, 20);
  assert.equal(short.ended, false);
  assert.throws(() => JSON.parse(short.text));
});

// ---- through the engine ----

let dir = "";
let tiny = "";
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "af-structured-"));
  tiny = join(dir, "tiny.gguf");
  await buildTinyModel(tiny);
});
after(async () => {
  if (dir !== "") await rm(dir, { recursive: true, force: true });
});

async function generateText(gen: ReturnType<Engine["generate"]>): Promise<{ text: string; stopReason: string; tokens: number }> {
  let text = "";
  for (;;) {
    const r = await gen.next();
    if (r.done === true) return { text, stopReason: r.value.stopReason, tokens: r.value.generatedTokens };
    text += r.value.text;
  }
}

test("the token trie holds every token that writes bytes, at the node its bytes lead to, and nothing else", async () => {
  const paths = [tiny, ...(smol.path ? [smol.path] : [])];
  for (const path of paths) {
    const tok = createTokenizer(await readGguf(path));
    const t = tokenTrie(tok);
    assert.equal(tokenTrie(tok), t, "built once per tokenizer");
    let inTrie = 0;
    for (let id = 0; id < tok.vocabSize; id++) {
      const b = t.bytes[id]!;
      if (tok.isControl(id) || tok.stopIds.has(id)) {
        assert.equal(b.length, 0);
        continue;
      }
      assert.deepEqual(b, tok.tokenBytes(id));
      if (b.length === 0) continue;
      inTrie++;
      let node = 0;
      for (const byte of b) {
        let next = -1;
        for (let e = t.childStart[node]!; e < t.childStart[node]! + t.childCount[node]!; e++) if (t.childByte[e] === byte) next = t.childNode[e]!;
        assert.ok(next > node, `${path}: token ${id}: no edge for byte ${byte} (children come after their parent in preorder)`);
        node = next;
      }
      assert.ok(Array.from(t.tokenIds.subarray(t.tokenStart[node]!, t.tokenStart[node + 1]!)).includes(id), `${path}: token ${id} not at its node`);
    }
    assert.equal(t.tokenIds.length, inTrie, path);
  }
});

test("tiny random model at temperature 1: every generation is valid JSON for its schema, ended at the value's end", async () => {
  const e = await Engine.load(tiny, { threads: 1 });
  try {
    for (const [name, schema] of SCHEMAS) {
      for (let seed = 1; seed <= 3; seed++) {
        const r = await generateText(e.generate("Hello", { schema, temperature: 1, topK: 0, topP: 1, minP: 0, seed, maxTokens: 64 }));
        assert.equal(r.stopReason, "eos", `${name}, seed ${seed}: ${JSON.stringify(r.text)}`);
        assertValid(schema, r.text, `${name}, seed ${seed}`);
      }
    }
    // Without a schema the same engine still writes free text (the constraint is per generation).
    const free = await generateText(e.generate("Hello", { temperature: 1, seed: 1, maxTokens: 8, stopAtEos: false }));
    assert.equal(free.tokens, 8);
    // A budget below the shortest value: stopped by length, unfinished.
    const cut = await generateText(e.generate("Hello", { schema: SCHEMAS[0]![1], seed: 1, maxTokens: 5 }));
    assert.equal(cut.stopReason, "length");
    assert.throws(() => JSON.parse(cut.text));
    // A bad schema fails before anything is generated, and the engine stays usable.
    await assert.rejects(generateText(e.generate("Hello", { schema: { type: "string", minLength: 1 } })), /BAD_SCHEMA|minLength/);
    const again = await generateText(e.generate("Hello", { schema: "json", seed: 2, maxTokens: 32 }));
    assertValid("json", again.text, "after a bad schema");
  } finally {
    await e.dispose();
  }
});

test("SmolLM2 at temperature 1: chat replies constrained by schemas are valid JSON", { skip: smol.reason }, async () => {
  const e = await Engine.load(smol.path!, {});
  try {
    const cases: [JsonSchema | "json", string][] = [
      [SCHEMAS[2]![1], "Describe a user with an id and a few tags as JSON."],
      [SCHEMAS[3]![1], "Pick a color as JSON."],
      [{ type: "object", properties: { name: { type: "string" }, age: { type: "integer" }, hobbies: { type: "array", items: { type: "string" }, maxItems: 3 } }, required: ["name", "age", "hobbies"] }, "Describe a fictional person as JSON."],
      ["json", "List three fruits and their colors as a JSON object."],
    ];
    for (const [schema, prompt] of cases) {
      for (const seed of [1, 2]) {
        const r = await generateText(e.chat([{ role: "user", content: prompt }], { schema, temperature: 1, seed, maxTokens: 96 }));
        assert.equal(r.stopReason, "eos", `${prompt} seed ${seed}: ${JSON.stringify(r.text)}`);
        assertValid(schema, r.text, `${prompt} seed ${seed}`);
      }
    }
  } finally {
    await e.dispose();
  }
});

test("CLI: run --json-schema prints a valid value; a bad schema file fails in one line naming the file and field", async () => {
  const good = join(dir, "good.json");
  await writeFile(good, JSON.stringify(SCHEMAS[0]![1]));
  const ok = await runCli(["run", tiny, "-p", "Hello", "--json-schema", good, "--temperature", "1", "--seed", "3", "-n", "64"]);
  assert.equal(ok.code, 0, ok.err);
  assertValid(SCHEMAS[0]![1], ok.out.trim(), "CLI");

  const bad = join(dir, "bad.json");
  await writeFile(bad, JSON.stringify({ type: "object", properties: { age: { type: "integer", maximum: 150 } } }));
  const notJson = join(dir, "not.json");
  await writeFile(notJson, "{ type: object }");
  for (const [file, want] of [
    [bad, `error: ${bad} at /properties/age/maximum: keyword "maximum" is not supported`],
    [notJson, `error: ${notJson}: not valid JSON`],
    [join(dir, "missing.json"), `error: cannot read the JSON schema file "${join(dir, "missing.json")}": no such file`],
  ]) {
    const r = await runCli(["run", tiny, "-p", "Hello", "--json-schema", file!]);
    assert.equal(r.code, 1, r.err);
    assert.ok(r.err.startsWith(want!), r.err);
    assert.equal(r.err.trim().split("\n").length, 1, r.err);
    assert.equal(r.out, "");
  }
});
