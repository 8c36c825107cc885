// Runs one generation for a chat or text completion request and answers it, streamed as
// server-sent events (`data: {...}` lines ending with `data: [DONE]`) or as one JSON object.
import type { ServerResponse } from "node:http";
import type { GeneratedToken, GenerationStats } from "../engine/types.js";
import type { ServerEngine } from "./engine.js";
import { statusError, toApiError } from "./errors.js";
import type { Job } from "./requests.js";
import { Answer, finishReason } from "./responses.js";

export const CANCELLED = statusError(503, "the generation was cancelled: the server is stopping", "server_stopping");

export interface Outcome {
  stats: GenerationStats | undefined;
  // Set once a streamed answer has begun (its status line is out).
  streamed: boolean;
  // The full answer (not streamed).
  body?: unknown;
}

function start(engine: ServerEngine, job: Job, signal: AbortSignal): AsyncGenerator<GeneratedToken, GenerationStats, void> {
  const options = { ...job.options, signal };
  return "messages" in job.input ? engine.chat(job.input.messages, options) : engine.generate(job.input.prompt, options);
}

// Not streamed: the whole text, then one object.
export async function complete(engine: ServerEngine, job: Job, model: string, signal: AbortSignal): Promise<Outcome> {
  const gen = start(engine, job, signal);
  const tokens: GeneratedToken[] = [];
  let text = "";
  for (;;) {
    const r = await gen.next();
    if (r.done === true) {
      const answer = new Answer(job, model, engine.tokenizer);
      return { stats: r.value, streamed: false, body: answer.full(text, tokens, r.value) };
    }
    text += r.value.text;
    if (job.logprobs) tokens.push(r.value);
  }
}

// Streamed: the status line waits for the first token (or the end), so an error before it
// (a prompt longer than the context) is answered with its status; later errors end the
// stream with an error event. `open` writes the status line and headers.
export async function stream(
  engine: ServerEngine, job: Job, model: string, signal: AbortSignal, res: ServerResponse, open: () => void,
): Promise<Outcome> {
  const gen = start(engine, job, signal);
  const answer = new Answer(job, model, engine.tokenizer);
  const send = (data: unknown) => {
    if (!res.destroyed && !res.writableEnded) res.write(`data: ${JSON.stringify(data)}\n\n`);
  };
  const outcome: Outcome = { stats: undefined, streamed: false };
  let first = true;
  try {
    for (;;) {
      const r = await gen.next();
      if (!outcome.streamed) {
        open();
        outcome.streamed = true;
      }
      if (r.done === true) {
        outcome.stats = r.value;
        if (r.value.stopReason === "aborted") {
          // The client is still here, so the server cancelled it (stopping, drain time over).
          send(CANCELLED.body());
          break;
        }
        if (first && job.kind === "chat") send(answer.chunk("", [], null, true));
        send(answer.chunk("", [], finishReason(r.value)));
        if (job.includeUsage) send(answer.usageChunk(r.value));
        break;
      }
      const t = r.value;
      if (t.text === "" && !job.logprobs && !first) continue;
      send(answer.chunk(t.text, [t], null, first));
      first = false;
    }
  } catch (e) {
    if (!outcome.streamed) throw e;
    send(toApiError(e).body());
  }
  if (!res.destroyed && !res.writableEnded) res.end("data: [DONE]\n\n");
  return outcome;
}
