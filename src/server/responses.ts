// The JSON objects OpenAI's chat.completion(.chunk) and text_completion answers are made of,
// from the engine's tokens and stats.
import { randomUUID } from "node:crypto";
import type { GeneratedToken, GenerationStats } from "../engine/types.js";
import type { Job } from "./requests.js";

export type FinishReason = "stop" | "length";

// The token text a client sees in logprobs: its bytes as UTF-8 (a token holding part of a
// character shows U+FFFD there; `bytes` has the exact bytes, as in OpenAI's answers).
export interface TokenPieces {
  tokenBytes(id: number): Uint8Array;
}

export function finishReason(stats: GenerationStats): FinishReason {
  return stats.stopReason === "length" || stats.stopReason === "context" ? "length" : "stop";
}

export function usage(stats: GenerationStats): { prompt_tokens: number; completion_tokens: number; total_tokens: number } {
  return { prompt_tokens: stats.promptTokens, completion_tokens: stats.generatedTokens, total_tokens: stats.promptTokens + stats.generatedTokens };
}

const decoder = new TextDecoder("utf-8");
function piece(pieces: TokenPieces, id: number): { token: string; bytes: number[] } {
  const b = pieces.tokenBytes(id);
  return { token: decoder.decode(b), bytes: [...b] };
}

// Chat logprobs content items for these tokens.
export function chatLogprobs(pieces: TokenPieces, tokens: readonly GeneratedToken[]): { content: unknown[]; refusal: null } {
  const content = tokens
    .filter((t) => t.id >= 0 && t.logprob !== undefined)
    .map((t) => ({
      ...piece(pieces, t.id),
      logprob: t.logprob!,
      top_logprobs: (t.topLogprobs ?? []).map((a) => ({ ...piece(pieces, a.id), logprob: a.logprob })),
    }));
  return { content, refusal: null };
}

// Legacy completions logprobs; text_offset counts characters from `offset` (the text before).
export function completionLogprobs(pieces: TokenPieces, tokens: readonly GeneratedToken[], offset: number) {
  const out = { tokens: [] as string[], token_logprobs: [] as number[], top_logprobs: [] as Record<string, number>[], text_offset: [] as number[] };
  let at = offset;
  for (const t of tokens) {
    if (t.id < 0 || t.logprob === undefined) continue;
    const token = piece(pieces, t.id).token;
    out.tokens.push(token);
    out.token_logprobs.push(t.logprob);
    out.top_logprobs.push(Object.fromEntries((t.topLogprobs ?? []).map((a) => [piece(pieces, a.id).token, a.logprob])));
    out.text_offset.push(at);
    at += token.length;
  }
  return out;
}

// Ids and timestamps shared by every chunk of one answer.
export class Answer {
  readonly id: string;
  readonly created = Math.floor(Date.now() / 1000);
  // Characters of completion text sent so far (legacy logprobs' text_offset).
  textChars = 0;
  constructor(
    readonly job: Job,
    readonly model: string,
    private readonly pieces: TokenPieces,
  ) {
    this.id = `${job.kind === "chat" ? "chatcmpl" : "cmpl"}-${randomUUID().replace(/-/g, "")}`;
  }

  private logprobs(tokens: readonly GeneratedToken[]): unknown {
    if (!this.job.logprobs) return null;
    return this.job.kind === "chat" ? chatLogprobs(this.pieces, tokens) : completionLogprobs(this.pieces, tokens, this.textChars);
  }

  // The whole answer (not streamed).
  full(text: string, tokens: readonly GeneratedToken[], stats: GenerationStats): unknown {
    const head = { id: this.id, object: this.job.kind === "chat" ? "chat.completion" : "text_completion", created: this.created, model: this.model };
    const logprobs = this.logprobs(tokens);
    const choice = this.job.kind === "chat"
      ? { index: 0, message: { role: "assistant", content: text, refusal: null }, logprobs, finish_reason: finishReason(stats) }
      : { index: 0, text, logprobs, finish_reason: finishReason(stats) };
    return { ...head, choices: [choice], usage: usage(stats) };
  }

  // One streamed chunk: text (and the tokens it came from), or the last one with the finish reason.
  chunk(text: string, tokens: readonly GeneratedToken[], finish: FinishReason | null, first = false): unknown {
    const logprobs = finish === null ? this.logprobs(tokens) : null;
    const choice = this.job.kind === "chat"
      ? { index: 0, delta: finish !== null ? {} : first ? { role: "assistant", content: text } : { content: text }, logprobs, finish_reason: finish }
      : { index: 0, text, logprobs, finish_reason: finish };
    this.textChars += text.length;
    return { id: this.id, object: this.job.kind === "chat" ? "chat.completion.chunk" : "text_completion", created: this.created, model: this.model, choices: [choice] };
  }

  // stream_options.include_usage: a chunk with no choices and the counts, after the last one.
  usageChunk(stats: GenerationStats): unknown {
    return {
      id: this.id, object: this.job.kind === "chat" ? "chat.completion.chunk" : "text_completion", created: this.created, model: this.model,
      choices: [], usage: usage(stats),
    };
  }
}
