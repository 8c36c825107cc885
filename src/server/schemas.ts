// JSON schemas of the request bodies, checked by fastify (Ajv) before a route runs: a body
// that fails them is a 400 naming the field. Fields of OpenAI's API that we do not act on
// (user, metadata, store, ...) pass unchecked; the ones we cannot honour are refused in
// requests.ts with a message saying so. top_k, min_p, repeat_penalty and ignore_eos are
// extensions, as llama.cpp's server has them.
import { MAX_TOP_LOGPROBS } from "../engine/logprobs.js";
import type { JsonSchema } from "../structured/schema.js";

const nullable = (s: Record<string, unknown>) => ({ anyOf: [s, { type: "null" }] });

// OpenAI allows up to 4 stop sequences.
export const MAX_STOP_STRINGS = 4;

const sampling = {
  model: { type: "string" },
  max_tokens: nullable({ type: "integer", minimum: 1 }),
  temperature: nullable({ type: "number", minimum: 0, maximum: 2 }),
  top_p: nullable({ type: "number", minimum: 0, maximum: 1 }),
  top_k: nullable({ type: "integer", minimum: 0 }),
  min_p: nullable({ type: "number", minimum: 0, maximum: 1 }),
  repeat_penalty: nullable({ type: "number", exclusiveMinimum: 0, maximum: 100 }),
  seed: nullable({ type: "integer", minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
  stop: nullable({
    anyOf: [
      { type: "string", minLength: 1 },
      { type: "array", maxItems: MAX_STOP_STRINGS, items: { type: "string", minLength: 1 } },
    ],
  }),
  n: nullable({ type: "integer", minimum: 1 }),
  stream: nullable({ type: "boolean" }),
  stream_options: nullable({ type: "object", properties: { include_usage: { type: "boolean" } } }),
  frequency_penalty: nullable({ type: "number", minimum: -2, maximum: 2 }),
  presence_penalty: nullable({ type: "number", minimum: -2, maximum: 2 }),
  ignore_eos: nullable({ type: "boolean" }),
} as const;

// OpenAI's response_format; the schema's own keywords are checked when it is compiled
// (requests.ts). On text completions too, as llama.cpp's server takes it there.
const responseFormat = nullable({
  type: "object",
  required: ["type"],
  properties: {
    type: { type: "string", enum: ["text", "json_object", "json_schema"] },
    json_schema: {
      type: "object",
      properties: { name: { type: "string" }, description: { type: "string" }, schema: { type: ["object", "boolean"] }, strict: nullable({ type: "boolean" }) },
    },
  },
});

const textPart = { type: "object", required: ["type", "text"], properties: { type: { type: "string" }, text: { type: "string" } } };

export const chatBodySchema = {
  type: "object",
  required: ["messages"],
  properties: {
    ...sampling,
    max_completion_tokens: nullable({ type: "integer", minimum: 1 }),
    messages: {
      type: "array",
      minItems: 1,
      items: {
        type: "object",
        required: ["role"],
        properties: {
          role: { type: "string", enum: ["system", "developer", "user", "assistant"] },
          content: nullable({ anyOf: [{ type: "string" }, { type: "array", items: textPart }] }),
          name: { type: "string" },
        },
      },
    },
    logprobs: nullable({ type: "boolean" }),
    top_logprobs: nullable({ type: "integer", minimum: 0, maximum: MAX_TOP_LOGPROBS }),
    response_format: responseFormat,
    tools: nullable({ type: "array" }),
  },
} as const;

export const completionBodySchema = {
  type: "object",
  required: ["prompt"],
  properties: {
    ...sampling,
    // One prompt: a string, or an array holding one string.
    prompt: { anyOf: [{ type: "string" }, { type: "array", minItems: 1, maxItems: 1, items: { type: "string" } }] },
    // Legacy completions: the number of alternatives per token (OpenAI allows 0 to 5; we allow 20).
    logprobs: nullable({ type: "integer", minimum: 0, maximum: MAX_TOP_LOGPROBS }),
    echo: nullable({ type: "boolean" }),
    suffix: nullable({ type: "string" }),
    best_of: nullable({ type: "integer", minimum: 1 }),
    response_format: responseFormat,
  },
} as const;

export const budgetBodySchema = {
  type: "object",
  required: ["dram"],
  properties: {
    // Bytes, "512MB", "2GB" or a percentage of the model file ("35%").
    dram: { anyOf: [{ type: "integer", minimum: 1 }, { type: "string", minLength: 1 }] },
  },
} as const;

// The bodies as the schemas let them through.
type Nullable<T> = T | null | undefined;
export interface SamplingBody {
  model?: string;
  max_tokens?: Nullable<number>;
  temperature?: Nullable<number>;
  top_p?: Nullable<number>;
  top_k?: Nullable<number>;
  min_p?: Nullable<number>;
  repeat_penalty?: Nullable<number>;
  seed?: Nullable<number>;
  stop?: Nullable<string | string[]>;
  n?: Nullable<number>;
  stream?: Nullable<boolean>;
  stream_options?: Nullable<{ include_usage?: boolean }>;
  frequency_penalty?: Nullable<number>;
  presence_penalty?: Nullable<number>;
  ignore_eos?: Nullable<boolean>;
}
export interface ResponseFormat {
  type: "text" | "json_object" | "json_schema";
  json_schema?: { name?: string; description?: string; schema?: JsonSchema; strict?: Nullable<boolean> };
}
export interface ChatBody extends SamplingBody {
  messages: { role: string; content?: Nullable<string | { type: string; text: string }[]>; name?: string }[];
  max_completion_tokens?: Nullable<number>;
  logprobs?: Nullable<boolean>;
  top_logprobs?: Nullable<number>;
  response_format?: Nullable<ResponseFormat>;
  tools?: Nullable<unknown[]>;
}
export interface CompletionBody extends SamplingBody {
  prompt: string | string[];
  logprobs?: Nullable<number>;
  echo?: Nullable<boolean>;
  suffix?: Nullable<string>;
  best_of?: Nullable<number>;
  response_format?: Nullable<ResponseFormat>;
}
export interface BudgetBody {
  dram: number | string;
}
