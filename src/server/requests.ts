// A validated request body as a generation: what goes to the engine (messages or a prompt,
// GenerateOptions) and how to answer (streamed or not, usage, logprobs). Fields the schema
// lets through but we cannot honour are refused here with a 400 that names them.
import type { GenerateOptions } from "../engine/types.js";
import { isActiveflowError } from "../errors.js";
import { compileJsonSchema, type JsonSchema } from "../structured/schema.js";
import type { ChatMessage } from "../tokenizer/types.js";
import { badRequest } from "./errors.js";
import type { ChatBody, CompletionBody, SamplingBody } from "./schemas.js";

export interface Job {
  kind: "chat" | "completion";
  input: { messages: ChatMessage[] } | { prompt: string };
  // Without the signal, which the route adds.
  options: GenerateOptions;
  stream: boolean;
  // Streaming: send a last chunk with the token counts (stream_options.include_usage).
  includeUsage: boolean;
  // Report logprobs (options.logprobs alternatives per token).
  logprobs: boolean;
}

export function chatJob(body: ChatBody, contextLength: number): Job {
  refuseCommon(body);
  if (body.tools != null && body.tools.length > 0) throw badRequest("tools (function calling) is not supported by this server", "tools");
  const schema = responseFormat(body);
  if (body.top_logprobs != null && body.logprobs !== true) throw badRequest("top_logprobs needs logprobs: true", "top_logprobs");
  const messages = body.messages.map((m, i): ChatMessage => ({ role: m.role === "developer" ? "system" : m.role, content: contentText(m.content, i) }));
  const options = samplingOptions(body, body.max_completion_tokens ?? body.max_tokens, contextLength);
  if (schema !== undefined) options.schema = schema;
  if (body.logprobs === true) options.logprobs = body.top_logprobs ?? 0;
  return { kind: "chat", input: { messages }, options, ...streaming(body), logprobs: body.logprobs === true };
}

export function completionJob(body: CompletionBody, contextLength: number): Job {
  refuseCommon(body);
  if (body.echo === true) throw badRequest("echo is not supported by this server", "echo");
  if (body.suffix != null && body.suffix !== "") throw badRequest("suffix (insertion) is not supported by this server", "suffix");
  if (body.best_of != null && body.best_of > 1) throw badRequest("best_of above 1 is not supported: one completion per request", "best_of");
  const schema = responseFormat(body);
  const prompt = typeof body.prompt === "string" ? body.prompt : body.prompt[0]!;
  const options = samplingOptions(body, body.max_tokens, contextLength);
  if (schema !== undefined) options.schema = schema;
  if (body.logprobs != null) options.logprobs = body.logprobs;
  return { kind: "completion", input: { prompt }, options, ...streaming(body), logprobs: body.logprobs != null };
}

// ---- response_format: the one place structured output plugs in ----
// json_object is any JSON object; json_schema constrains the reply to its schema (the engine's
// generate({ schema })). The schema is compiled here, before the request queues, so one we
// cannot honour is a 400 naming the keyword by its JSON pointer, not a failure mid-stream.
const SCHEMA_PARAM = "response_format.json_schema.schema";

function responseFormat(body: ChatBody | CompletionBody): JsonSchema | "json" | undefined {
  const format = body.response_format;
  if (format == null || format.type === "text") return undefined;
  if (format.type === "json_object") return "json";
  const schema = format.json_schema?.schema;
  if (format.json_schema == null || schema === undefined) {
    throw badRequest("response_format json_schema needs json_schema.schema: the JSON Schema the reply must follow", SCHEMA_PARAM, "invalid_body");
  }
  try {
    compileJsonSchema(schema, SCHEMA_PARAM);
  } catch (e) {
    if (isActiveflowError(e) && e.code === "BAD_SCHEMA") throw badRequest(e.message, SCHEMA_PARAM, "unsupported_schema");
    throw e;
  }
  return schema;
}

function refuseCommon(body: SamplingBody): void {
  if (body.n != null && body.n > 1) throw badRequest("n above 1 is not supported: one choice per request", "n");
  for (const key of ["frequency_penalty", "presence_penalty"] as const) {
    const v = body[key];
    if (v != null && v !== 0) throw badRequest(`${key} is not supported; repeat_penalty (llama.cpp's, > 1 penalises repeats) is`, key);
  }
}

function contentText(content: ChatBody["messages"][number]["content"], index: number): string {
  if (content == null) return "";
  if (typeof content === "string") return content;
  return content
    .map((part, j) => {
      if (part.type !== "text") throw badRequest(`content parts of type "${part.type}" are not supported, only text`, `messages.${index}.content.${j}.type`);
      return part.text;
    })
    .join("");
}

// Sampling fields as GenerateOptions. Unset fields keep the engine's defaults (temperature 0.8,
// top-k 40, top-p 0.95, min-p 0.05), as llama.cpp's server does; temperature 0 is greedy.
// Without max_tokens a reply may run to the end of the context.
function samplingOptions(body: SamplingBody, maxTokens: number | null | undefined, contextLength: number): GenerateOptions {
  const o: GenerateOptions = { maxTokens: maxTokens ?? contextLength };
  if (body.temperature != null) o.temperature = body.temperature;
  if (body.temperature === 0) o.greedy = true;
  if (body.top_p != null) o.topP = body.top_p;
  if (body.top_k != null) o.topK = body.top_k;
  if (body.min_p != null) o.minP = body.min_p;
  if (body.repeat_penalty != null) o.repeatPenalty = body.repeat_penalty;
  if (body.seed != null) o.seed = body.seed;
  if (body.stop != null) o.stop = typeof body.stop === "string" ? [body.stop] : body.stop;
  if (body.ignore_eos === true) o.stopAtEos = false;
  return o;
}

function streaming(body: SamplingBody): { stream: boolean; includeUsage: boolean } {
  const stream = body.stream === true;
  return { stream, includeUsage: stream && body.stream_options?.include_usage === true };
}
