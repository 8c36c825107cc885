// `activeflow serve` end to end: the official openai client against a real server process on
// 127.0.0.1 with tiny random-weight models (ChatML, and one without a chat template under a DRAM
// budget) and SmolLM2 where it is fetched, plus the loading state in-process. Covers streaming
// and not, stop sequences, seeds, usage, logprobs, response_format (json_object, json_schema
// validated by ajv), every error status, a disconnecting client freeing its slot, and SIGTERM.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { runCli } from "./helpers/cli.js";
import { startServe, type ServeProcess } from "./helpers/server.js";
import { findSmolLM2 } from "./helpers/smollm2.js";
import { withEngine } from "./helpers/engine.js";
import { buildTinyModel } from "../src/synth/tinyModel.js";
import { readGguf } from "../src/gguf/reader.js";
import { createTokenizer } from "../src/tokenizer/index.js";
import { ApiServer } from "../src/server/app.js";
import type { JsonSchema } from "../src/structured/schema.js";
import { validator } from "./helpers/jsonValidator.js";
import type { ServerEngine } from "../src/server/engine.js";
import type { Tokenizer } from "../src/tokenizer/types.js";

const KEY = "test-key";
let dir = "";
let chatModel = "";
let server: ServeProcess;
let client: OpenAI;
let tokenizer: Tokenizer;
const env = () => ({ ...process.env, ACTIVEFLOW_CACHE: join(dir, "cache") });

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "af-serve-"));
  chatModel = join(dir, "chat.gguf");
  await buildTinyModel(chatModel, { seed: 3 });
  tokenizer = createTokenizer(await readGguf(chatModel));
  // A context long enough that an ignore_eos reply outlasts the tests that cut it short.
  server = await startServe([chatModel, "--api-key", KEY, "--max-queue", "1", "--ctx", "8192", "--threads", "1"], env());
  await server.ready();
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: KEY, maxRetries: 0 });
});

after(async () => {
  if (server?.child.exitCode === null) {
    server.child.kill("SIGTERM");
    assert.equal(await server.exited, 0, server.stderr());
  }
  if (dir !== "") await rm(dir, { recursive: true, force: true });
});

type ChatParams = OpenAI.ChatCompletionCreateParamsNonStreaming;
type Extensions = { ignore_eos?: boolean };
const user = (content: string): OpenAI.ChatCompletionMessageParam[] => [{ role: "user", content }];
const chat = (p: Omit<ChatParams, "model"> & Extensions) => client.chat.completions.create({ model: "tiny", ...p } as ChatParams);
const chatTokens = (messages: { role: string; content: string }[]) =>
  tokenizer.encode(tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true }), { addSpecial: false, parseSpecial: true }).length;

async function streamChat(p: Omit<ChatParams, "model"> & Extensions, includeUsage = false) {
  const s = await client.chat.completions.create({ model: "tiny", ...p, stream: true, ...(includeUsage ? { stream_options: { include_usage: true } } : {}) } as OpenAI.ChatCompletionCreateParamsStreaming);
  const chunks: OpenAI.ChatCompletionChunk[] = [];
  for await (const c of s) chunks.push(c);
  return { chunks, text: chunks.map((c) => c.choices[0]?.delta.content ?? "").join("") };
}

async function metric(name: string, url = server.url): Promise<number> {
  const text = await (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${KEY}` } })).text();
  const m = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
  assert.ok(m, `metric ${name} in\n${text}`);
  return Number(m[1]);
}

// Polls `cond` every 20 ms; fails after 10 s.
async function until(cond: () => Promise<boolean>, what: string): Promise<void> {
  const end = Date.now() + 10_000;
  while (!(await cond())) {
    if (Date.now() > end) assert.fail(`timed out waiting until ${what}`);
    await new Promise((f) => setTimeout(f, 20));
  }
}

async function expectStatus(p: Promise<unknown>, status: number, message: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof OpenAI.APIError, String(e));
    assert.equal(e.status, status, e.message);
    assert.match(e.message, message);
    return true;
  });
}

test("health, models and the API key", async () => {
  const h = await fetch(`${server.url}/health`);
  assert.equal(h.status, 200);
  assert.deepEqual(await h.json(), { status: "ok" });
  const models = await client.models.list();
  assert.deepEqual(models.data.map((m) => m.id), ["chat"]);
  assert.equal((await client.models.retrieve("chat")).owned_by, "activeflow");
  await expectStatus(client.models.retrieve("gpt-4"), 404, /model "gpt-4" is not served here/);
  const nokey = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "wrong", maxRetries: 0 });
  await assert.rejects(nokey.models.list(), OpenAI.AuthenticationError);
  const raw = await fetch(`${server.url}/v1/models`);
  assert.equal(raw.status, 401);
  assert.deepEqual(await raw.json(), {
    error: { message: "missing or wrong API key: send the header `Authorization: Bearer <key>`", type: "authentication_error", param: null, code: "invalid_api_key" },
  });
});

test("a non-streamed chat reply: usage counts, length finish, seeds repeat", async () => {
  const messages = [{ role: "user", content: "Hello world" }];
  const a = await chat({ messages: user("Hello world"), max_tokens: 12, seed: 7, temperature: 1, ignore_eos: true });
  assert.equal(a.object, "chat.completion");
  assert.equal(a.model, "chat");
  assert.equal(a.choices.length, 1);
  assert.equal(a.choices[0]!.finish_reason, "length");
  assert.equal(a.choices[0]!.message.role, "assistant");
  assert.deepEqual(a.usage, { prompt_tokens: chatTokens(messages), completion_tokens: 12, total_tokens: chatTokens(messages) + 12, });
  const b = await chat({ messages: user("Hello world"), max_tokens: 12, seed: 7, temperature: 1, ignore_eos: true });
  assert.equal(b.choices[0]!.message.content, a.choices[0]!.message.content, "same seed, same reply");
  const c = await chat({ messages: user("Hello world"), max_tokens: 12, seed: 8, temperature: 1, ignore_eos: true });
  assert.notEqual(c.choices[0]!.message.content, a.choices[0]!.message.content, "another seed, another reply");
  // The streamed reply of the same request is the same text.
  const s = await streamChat({ messages: user("Hello world"), max_tokens: 12, seed: 7, temperature: 1, ignore_eos: true }, true);
  assert.equal(s.text, a.choices[0]!.message.content);
  assert.equal(s.chunks[0]!.choices[0]!.delta.role, "assistant");
  const last = s.chunks.at(-1)!;
  assert.deepEqual(last.choices, [], "the usage chunk comes last and has no choices");
  assert.deepEqual(last.usage, a.usage);
  assert.equal(s.chunks.at(-2)!.choices[0]!.finish_reason, "length");
  assert.equal(new Set(s.chunks.map((x) => x.id)).size, 1, "one id for every chunk");
});

test("the raw event stream ends with data: [DONE]; text completions stream and count usage", async () => {
  const r = await fetch(`${server.url}/v1/completions`, {
    method: "POST", headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "chat", prompt: "Hello", max_tokens: 5, stream: true, seed: 1, ignore_eos: true }),
  });
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type") ?? "", /^text\/event-stream/);
  const events = (await r.text()).split("\n\n").filter((e) => e !== "");
  assert.equal(events.at(-1), "data: [DONE]");
  for (const e of events) assert.match(e, /^data: /);
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)) as OpenAI.Completion);
  assert.equal(chunks.at(-1)!.choices[0]!.finish_reason, "length");
  const streamed = chunks.map((c) => c.choices[0]!.text).join("");
  const whole = await client.completions.create({ model: "chat", prompt: "Hello", max_tokens: 5, seed: 1, ignore_eos: true } as OpenAI.CompletionCreateParamsNonStreaming);
  assert.equal(whole.object, "text_completion");
  assert.equal(whole.choices[0]!.text, streamed);
  assert.deepEqual(whole.usage, { prompt_tokens: tokenizer.encode("Hello", { addSpecial: true }).length, completion_tokens: 5, total_tokens: tokenizer.encode("Hello", { addSpecial: true }).length + 5 });
});

test("stop sequences end the reply before them, streamed or not", async () => {
  const base = await chat({ messages: user("Hello"), max_tokens: 40, temperature: 0, ignore_eos: true });
  const text = base.choices[0]!.message.content!;
  // A stop string from the middle of the greedy reply, free of replacement characters.
  let at = -1;
  for (let i = 6; i + 2 <= text.length && at < 0; i++) if (!text.slice(i, i + 2).includes("\uFFFD")) at = i;
  assert.ok(at > 0, `a clean 2-character window in ${JSON.stringify(text)}`);
  const stop = text.slice(at, at + 2);
  const cut = text.indexOf(stop);
  const r = await chat({ messages: user("Hello"), max_tokens: 40, temperature: 0, ignore_eos: true, stop: ["zzzz-never", stop] });
  assert.equal(r.choices[0]!.message.content, text.slice(0, cut));
  assert.equal(r.choices[0]!.finish_reason, "stop");
  assert.ok(r.usage!.completion_tokens < 40);
  const s = await streamChat({ messages: user("Hello"), max_tokens: 40, temperature: 0, ignore_eos: true, stop });
  assert.equal(s.text, text.slice(0, cut));
  assert.equal(s.chunks.at(-1)!.choices[0]!.finish_reason, "stop");
});

test("logprobs: the chosen token's and the top alternatives', as the model computes them", async () => {
  const r = await chat({ messages: user("Hello world"), max_tokens: 6, temperature: 0, ignore_eos: true, logprobs: true, top_logprobs: 3 });
  const content = r.choices[0]!.logprobs!.content!;
  assert.equal(content.length, 6);
  for (const t of content) {
    assert.equal(t.top_logprobs.length, 3);
    assert.ok(t.top_logprobs[0]!.logprob >= t.top_logprobs[1]!.logprob && t.top_logprobs[1]!.logprob >= t.top_logprobs[2]!.logprob);
    assert.equal(t.logprob, t.top_logprobs[0]!.logprob, "greedy picks the most likely token");
    assert.equal(t.token, t.top_logprobs[0]!.token);
    assert.equal(new TextDecoder().decode(Uint8Array.from(t.bytes!)), t.token);
  }
  // The first token's log-probability from the engine's own logits.
  const ids = tokenizer.encode(tokenizer.applyChatTemplate([{ role: "user", content: "Hello world" }], { addGenerationPrompt: true }), { addSpecial: false, parseSpecial: true });
  const row = await withEngine(chatModel, { threads: 1 }, async (e) => (await e.evaluateLogits(ids)).at(-1)!);
  const max = Math.max(...row);
  const lse = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
  assert.ok(Math.abs(content[0]!.logprob - (max - lse)) < 1e-4, `${content[0]!.logprob} vs ${max - lse}`);
  // Without logprobs: none.
  assert.equal((await chat({ messages: user("Hi"), max_tokens: 2 })).choices[0]!.logprobs, null);
  // Legacy completions: tokens, token_logprobs, top_logprobs maps, text offsets.
  const c = await client.completions.create({ model: "chat", prompt: "Hello", max_tokens: 4, temperature: 0, logprobs: 2, ignore_eos: true } as OpenAI.CompletionCreateParamsNonStreaming);
  const lp = c.choices[0]!.logprobs!;
  assert.equal(lp.tokens!.length, 4);
  assert.equal(lp.token_logprobs!.length, 4);
  for (const m of lp.top_logprobs!) assert.ok(Object.keys(m).length >= 1 && Object.keys(m).length <= 2);
  assert.equal(lp.text_offset![0], 0);
  // Streamed: one logprobs item per token chunk.
  const s = await streamChat({ messages: user("Hello world"), max_tokens: 6, temperature: 0, ignore_eos: true, logprobs: true, top_logprobs: 3 });
  const streamed = s.chunks.flatMap((x) => x.choices[0]?.logprobs?.content ?? []);
  assert.deepEqual(streamed.map((t) => t.logprob), content.map((t) => t.logprob));
});

// Schemas for response_format: nested objects, arrays with bounds, enums and consts with
// escapes and non-ASCII text, numbers, recursion, alternatives.
const FORMAT_SCHEMAS: [string, JsonSchema][] = [
  ["nested object", {
    type: "object",
    properties: {
      name: { type: "string" },
      age: { type: "integer" },
      score: { type: "number" },
      tags: { type: "array", items: { enum: ["a\"b", "back\\slash", "new\nline", "é🙂"] }, minItems: 1, maxItems: 3 },
      address: { type: "object", properties: { city: { type: "string" }, zip: { type: ["string", "null"] } }, required: ["city", "zip"], additionalProperties: false },
      version: { const: "1.0" },
    },
    required: ["name", "age", "score", "tags", "address", "version"],
    additionalProperties: false,
  }],
  ["array of records", { type: "array", items: { type: "object", properties: { id: { type: "integer" }, ok: { type: "boolean" } }, required: ["id", "ok"] }, minItems: 2, maxItems: 4 }],
  ["recursive $ref", {
    $defs: { node: { type: "object", properties: { value: { type: "number" }, children: { type: "array", items: { $ref: "#/$defs/node" }, maxItems: 2 } }, required: ["value", "children"] } },
    $ref: "#/$defs/node",
  }],
  ["anyOf", { anyOf: [{ type: "string" }, { type: "object", properties: { n: { type: "number" } }, required: ["n"] }, { type: "null" }] }],
];

// Parses a reply and checks it against its schema with ajv; fails with the text otherwise.
function assertValid(schema: JsonSchema | "json", text: string | null | undefined, what: string): unknown {
  let value: unknown;
  assert.doesNotThrow(() => (value = JSON.parse(text ?? "")), `${what}: ${JSON.stringify(text)} does not parse`);
  const err = validator(schema)(value);
  assert.equal(err, undefined, `${what}: ${JSON.stringify(text)} is invalid: ${err}`);
  return value;
}

test("response_format: json_schema and json_object replies parse and validate, streamed or not, chat and text", async () => {
  for (const [name, schema] of FORMAT_SCHEMAS) {
    const response_format = { type: "json_schema", json_schema: { name: "reply", schema: schema as Record<string, unknown>, strict: true } } as const;
    for (const seed of [1, 2, 3]) {
      const what = `${name}, seed ${seed}`;
      const r = await chat({ messages: user("Reply in JSON."), response_format, max_tokens: 400, temperature: 1, seed });
      assertValid(schema, r.choices[0]!.message.content, what);
      assert.equal(r.choices[0]!.finish_reason, "stop", `${what}: the reply ends where the value does`);
      const s = await streamChat({ messages: user("Reply in JSON."), response_format, max_tokens: 400, temperature: 1, seed });
      assert.equal(s.text, r.choices[0]!.message.content, `${what}: streamed as sent whole`);
    }
    // Text completions take response_format too (as llama.cpp's server does).
    const c = await client.completions.create({ model: "x", prompt: "{", response_format, max_tokens: 400, temperature: 1, seed: 4 } as OpenAI.CompletionCreateParamsNonStreaming);
    assertValid(schema, c.choices[0]!.text, `${name}, text completion`);
  }
  for (const seed of [1, 2, 3]) {
    const r = await chat({ messages: user("Reply in JSON."), response_format: { type: "json_object" }, max_tokens: 400, temperature: 1, seed });
    const value = assertValid("json", r.choices[0]!.message.content, `json_object, seed ${seed}`);
    assert.ok(typeof value === "object" && value !== null && !Array.isArray(value));
  }
  // Logprobs still come from the model's own distribution.
  const lp = await chat({ messages: user("x"), response_format: { type: "json_object" }, max_tokens: 400, temperature: 0, logprobs: true, top_logprobs: 2 });
  assert.equal(lp.choices[0]!.logprobs!.content!.map((t) => t.token).join(""), lp.choices[0]!.message.content);
  // A budget too short for the value: it ends unfinished, reported as a length stop.
  const short = await chat({ messages: user("x"), response_format: { type: "json_schema", json_schema: { name: "r", schema: FORMAT_SCHEMAS[0]![1] as Record<string, unknown> } }, max_tokens: 3 });
  assert.equal(short.choices[0]!.finish_reason, "length");
});

const smol = await findSmolLM2();

test("response_format on SmolLM2: json_schema and json_object replies at temperature 1 validate", { skip: smol.reason }, async () => {
  const s = await startServe([smol.path!, "--threads", "1", "--ctx", "1024"]);
  try {
    await s.ready();
    const c = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: "none", maxRetries: 0 });
    const person = FORMAT_SCHEMAS[0]![1];
    for (const seed of [1, 2]) {
      const r = await c.chat.completions.create({
        model: "smollm2", messages: user("Describe a fictional person as JSON."), max_tokens: 256, temperature: 1, seed,
        response_format: { type: "json_schema", json_schema: { name: "person", schema: person as Record<string, unknown> } },
      });
      assertValid(person, r.choices[0]!.message.content, `SmolLM2 person, seed ${seed}`);
      const stream = await c.chat.completions.create({
        model: "smollm2", messages: user("List three fruits and their colours as a JSON object."), max_tokens: 256, temperature: 1, seed, stream: true,
        response_format: { type: "json_object" },
      });
      let text = "";
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
      assertValid("json", text, `SmolLM2 json_object, seed ${seed}`);
    }
  } finally {
    s.child.kill("SIGTERM");
    assert.equal(await s.exited, 0, s.stderr());
  }
});

test("response_format: an unsupported or missing schema is a 400 naming the field, answered before the request queues", async () => {
  const bad = (schema: unknown) => ({ type: "json_schema", json_schema: { name: "r", schema } }) as OpenAI.ResponseFormatJSONSchema;
  // The queue (1 place) is full: a request that reached it would be a 429.
  const long = { model: "x", messages: user("Hello"), max_tokens: 8000, temperature: 1, ignore_eos: true, stream: true } as OpenAI.ChatCompletionCreateParamsStreaming;
  const running = new AbortController(), waiting = new AbortController();
  const a = await client.chat.completions.create(long, { signal: running.signal });
  await a[Symbol.asyncIterator]().next();
  const b = client.chat.completions.create(long, { signal: waiting.signal });
  try {
    await until(async () => (await metric("activeflow_queue_length")) === 1, "B waits while A runs");
    await expectStatus(chat({ messages: user("x"), response_format: bad({ type: "object", properties: { age: { type: "integer", minimum: 0 } } }) }), 400,
      /response_format\.json_schema\.schema at \/properties\/age\/minimum: keyword "minimum" is not supported/);
    await expectStatus(chat({ messages: user("x"), response_format: bad({ type: "string", pattern: "a+" }) }), 400, /at \/pattern: keyword "pattern" is not supported/);
    await expectStatus(chat({ messages: user("x"), response_format: bad({ $ref: "#/$defs/missing" }) }), 400, /at \/\$ref: reference #\/\$defs\/missing points to nothing/);
    await expectStatus(client.completions.create({ model: "x", prompt: "x", response_format: bad({ type: "strin" }) } as OpenAI.CompletionCreateParamsNonStreaming), 400, /at \/type: unknown type "strin"/);
    await expectStatus(chat({ messages: user("x"), response_format: { type: "json_schema" } as unknown as OpenAI.ResponseFormatJSONSchema }), 400, /json_schema needs json_schema\.schema/);
    // The error object as OpenAI shapes it, the field in `param`.
    const raw = await fetch(`${server.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ messages: user("x"), response_format: bad({ type: "array", uniqueItems: true }) }),
    });
    assert.equal(raw.status, 400);
    assert.deepEqual(((await raw.json()) as { error: unknown }).error, {
      message: 'response_format.json_schema.schema at /uniqueItems: keyword "uniqueItems" is not supported (supported: type, enum, const, properties, required, additionalProperties, items, prefixItems, minItems, maxItems, anyOf, oneOf, allOf, $ref; annotations such as title and description are ignored)',
      type: "invalid_request_error", param: "response_format.json_schema.schema", code: "unsupported_schema",
    });
    // A schema that is not an object or a boolean fails the body's own schema.
    await expectStatus(chat({ messages: user("x"), response_format: bad("object") }), 400, /body\/response_format\/json_schema\/schema must be object,boolean/);
    assert.equal(await metric("activeflow_queue_length"), 1, "none of them queued");
  } finally {
    waiting.abort();
    running.abort();
    await b.catch(() => {});
  }
  await until(async () => (await metric("activeflow_requests_running")) === 0 && (await metric("activeflow_queue_length")) === 0, "A and B are gone");
});

test("bad bodies are 400 with the field named; the body limit is 413; unknown routes 404", async () => {
  await expectStatus(client.chat.completions.create({ model: "x", messages: [] }), 400, /body\/messages must NOT have fewer than 1 items/);
  await expectStatus(chat({ messages: user("x"), temperature: 5 }), 400, /body\/temperature must be <= 2/);
  await expectStatus(chat({ messages: user("x"), n: 2 }), 400, /n above 1 is not supported/);
  await expectStatus(chat({ messages: user("x"), logit_bias: {}, top_logprobs: 2 }), 400, /top_logprobs needs logprobs: true/);
  await expectStatus(chat({ messages: user("x"), frequency_penalty: 0.5 }), 400, /frequency_penalty is not supported/);
  assert.equal((await chat({ messages: user("x"), max_tokens: 1, response_format: { type: "text" } })).choices.length, 1);
  // A prompt longer than the context (8192 tokens): the client's error, named as OpenAI names it.
  await expectStatus(client.completions.create({ model: "x", prompt: "Hello ".repeat(9000), max_tokens: 1 }), 400, /the context holds 8192/);
  const post = (path: string, body: string, type = "application/json") =>
    fetch(`${server.url}${path}`, { method: "POST", headers: { authorization: `Bearer ${KEY}`, "content-type": type }, body });
  const broken = await post("/v1/chat/completions", "{not json");
  assert.equal(broken.status, 400);
  assert.equal(((await broken.json()) as { error: { type: string } }).error.type, "invalid_request_error");
  const missing = await post("/v1/chat/completions", JSON.stringify({ model: "x" }));
  assert.equal(missing.status, 400);
  assert.deepEqual(((await missing.json()) as { error: unknown }).error, {
    message: "body must have required property 'messages'", type: "invalid_request_error", param: "messages", code: "invalid_body",
  });
  const big = await post("/v1/chat/completions", JSON.stringify({ model: "x", messages: [{ role: "user", content: "x".repeat(2 << 20) }] }));
  assert.equal(big.status, 413);
  assert.equal(((await big.json()) as { error: { type: string } }).error.type, "invalid_request_error");
  const nowhere = await fetch(`${server.url}/v1/embeddings`, { method: "POST", headers: { authorization: `Bearer ${KEY}` } });
  assert.equal(nowhere.status, 404);
  assert.deepEqual(await nowhere.json(), { error: { message: "no route POST /v1/embeddings", type: "not_found_error", param: null, code: "not_found" } });
  // The budget route needs a model served with --dram.
  const budget = await post("/v1/budget", JSON.stringify({ dram: "50%" }));
  assert.equal(budget.status, 400);
  assert.match(((await budget.json()) as { error: { message: string } }).error.message, /only when the model is served with --dram/);
});

test("a full queue answers 429; a client that disconnects frees its place and its slot", async () => {
  const long = { messages: user("Hello"), max_tokens: 8000, temperature: 1, ignore_eos: true };
  const before = await metric("activeflow_generated_tokens_total");
  const cancelledBefore = await metric("activeflow_generations_cancelled_total");
  // A: runs. B: waits (the queue holds 1). C: refused.
  const a = await client.chat.completions.create({ model: "x", ...long, stream: true } as OpenAI.ChatCompletionCreateParamsStreaming);
  const aIter = a[Symbol.asyncIterator]();
  await aIter.next();
  const bAbort = new AbortController();
  const b = client.chat.completions.create({ model: "x", ...long, stream: true } as OpenAI.ChatCompletionCreateParamsStreaming, { signal: bAbort.signal });
  await until(async () => (await metric("activeflow_queue_length")) === 1, "B waits while A runs");
  await expectStatus(chat({ messages: user("Hello"), max_tokens: 1 }), 429, /the server is busy: 1 request is already waiting/);
  // B's client goes away while it waits: it leaves the queue.
  const bStream = await Promise.race([b, new Promise<undefined>((f) => setTimeout(() => f(undefined), 300))]);
  assert.equal(bStream, undefined, "B has no answer while A runs");
  bAbort.abort();
  await until(async () => (await metric("activeflow_queue_length")) === 0, "B left the queue");
  // A's client goes away mid-reply: its generation stops and the next request runs at once.
  for (let i = 0; i < 3; i++) await aIter.next();
  a.controller.abort();
  const t0 = performance.now();
  const next = await chat({ messages: user("Hi"), max_tokens: 3, ignore_eos: true });
  assert.equal(next.usage!.completion_tokens, 3);
  assert.ok(performance.now() - t0 < 5000, "the slot was freed");
  assert.equal(await metric("activeflow_requests_running"), 0);
  assert.equal(await metric("activeflow_generations_cancelled_total"), cancelledBefore + 1);
  const generated = (await metric("activeflow_generated_tokens_total")) - before;
  assert.ok(generated < 4000, `A stopped early: ${generated} tokens generated in all`);
  await b.catch(() => {});
});

test("health is 503 while the model loads, then 200; generations wait for the model", async () => {
  const s = new ApiServer({ modelId: "m", apiKey: undefined, maxQueue: 1, budgeted: false, log: () => {} });
  const { url } = await s.listen("127.0.0.1", 0);
  try {
    const h = await fetch(`${url}/health`);
    assert.equal(h.status, 503);
    assert.deepEqual(await h.json(), { status: "loading" });
    const c = new OpenAI({ baseURL: `${url}/v1`, apiKey: "none", maxRetries: 0 });
    await expectStatus(c.chat.completions.create({ model: "m", messages: user("x") }), 503, /the model is loading/);
    assert.equal((await c.models.list()).data[0]!.id, "m");
    s.setEngine({ contextLength: 16 } as ServerEngine);
    assert.equal((await fetch(`${url}/health`)).status, 200);
  } finally {
    await s.stop(0);
  }
});

test("under --dram: a model without a chat template is a 500, the budget changes live, SIGTERM drains", async () => {
  const plain = join(dir, "plain.gguf");
  const synth = await runCli(["synth", "--shape", "tiny", "--type", "q8_0", plain, "--seed", "2"]);
  assert.equal(synth.code, 0, synth.err);
  const s = await startServe([plain, "--dram", "8MB", "--ctx", "4096", "--max-queue", "4", "--threads", "1", "--json"], env());
  assert.deepEqual(Object.keys(s.printed ?? {}).sort(), ["host", "model", "port", "url"]);
  assert.equal(s.printed!.url, `http://127.0.0.1:${s.printed!.port}`);
  assert.equal(s.printed!.model, "plain");
  await s.ready();
  const c = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: "none", maxRetries: 0 });
  await expectStatus(c.chat.completions.create({ model: "plain", messages: user("x") }), 500, /chat_template/);

  const get = async () => (await (await fetch(`${s.url}/v1/budget`)).json()) as { dram_budget_bytes: number; cache_bytes: number };
  const first = await get();
  assert.equal(await metric("activeflow_dram_budget_bytes", s.url), first.dram_budget_bytes);
  const setTo = (dram: string | number) => fetch(`${s.url}/v1/budget`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ dram }) });
  const lower = await setTo(Math.floor(first.dram_budget_bytes * 0.9));
  assert.equal(lower.status, 200);
  const now = (await lower.json()) as { dram_budget_bytes: number; cache_bytes: number };
  assert.equal(now.dram_budget_bytes, Math.floor(first.dram_budget_bytes * 0.9));
  assert.ok(now.cache_bytes < first.cache_bytes, `${now.cache_bytes} < ${first.cache_bytes}`);
  assert.equal(await metric("activeflow_dram_budget_bytes", s.url), now.dram_budget_bytes);
  const tooSmall = await setTo(1000);
  assert.equal(tooSmall.status, 400);
  assert.match(((await tooSmall.json()) as { error: { message: string } }).error.message, /minimum/);
  assert.equal((await get()).dram_budget_bytes, now.dram_budget_bytes, "the old budget stays");

  // SIGTERM while one reply streams and another waits: both finish, then the process exits 0.
  const params = { model: "plain", prompt: "Hello", max_tokens: 3000, stream: true, stream_options: { include_usage: true }, ignore_eos: true, seed: 1 } as OpenAI.CompletionCreateParamsStreaming;
  const one = await c.completions.create(params);
  const it = one[Symbol.asyncIterator]();
  const firstChunk = await it.next();
  const two = c.completions.create(params);
  await until(async () => (await metric("activeflow_queue_length", s.url)) === 1, "the second request waits while the first runs");
  s.child.kill("SIGTERM");
  const drain = async (iter: AsyncIterator<OpenAI.Completion>, head: OpenAI.Completion[]) => {
    const chunks = [...head];
    for (let r = await iter.next(); r.done !== true; r = await iter.next()) chunks.push(r.value);
    return chunks;
  };
  const oneChunks = await drain(it, [firstChunk.value as OpenAI.Completion]);
  const twoChunks = await drain((await two)[Symbol.asyncIterator](), []);
  for (const chunks of [oneChunks, twoChunks]) {
    assert.equal(chunks.at(-2)!.choices[0]!.finish_reason, "length");
    assert.equal(chunks.at(-1)!.usage!.completion_tokens, 3000, "every token was generated");
  }
  assert.equal(await s.exited, 0, s.stderr());
  assert.match(s.stderr(), /stopping: finishing running and queued requests/);
  await assert.rejects(fetch(`${s.url}/health`), "nothing listens any more");
});
