// Context shift for chat: when a conversation no longer fits the context, the oldest whole
// turns after the system message(s) are dropped and the rest is prefilled again. The KV cache
// cannot move its entries (positions are baked into the keys by RoPE), so the shifted
// conversation is re-evaluated from the first dropped position on.
import { ActiveflowError } from "../errors.js";
import type { ChatMessage } from "../tokenizer/types.js";

export interface ShiftResult {
  // The messages to render: leading system messages, then the newest turns that fit.
  messages: ChatMessage[];
  ids: number[];
  // Messages left out (counted from the first non-system message) and the tokens they held.
  droppedMessages: number;
  droppedTokens: number;
}

// `render` turns messages into prompt ids. The prompt must leave `reserve` tokens of the
// `contextLength` for the reply. When a shift is needed, turns are dropped until the prompt
// fills at most half the context (or less, if the reserve asks), so the next turns reuse the
// cached prefix instead of shifting again at once. The newest user turn is never dropped:
// if it alone fills the context, CONTEXT_FULL says so.
export function fitConversation(
  messages: readonly ChatMessage[],
  render: (messages: readonly ChatMessage[]) => number[],
  contextLength: number,
  reserve: number,
): ShiftResult {
  const all = render(messages);
  const limit = contextLength - reserve;
  if (all.length <= limit) return { messages: [...messages], ids: all, droppedMessages: 0, droppedTokens: 0 };
  let head = 0;
  while (head < messages.length && messages[head]!.role === "system") head++;
  const target = Math.min(limit, Math.floor(contextLength / 2));
  // Turn starts: each user message after the system head; the last one is the turn being asked.
  const starts: number[] = [];
  for (let i = head; i < messages.length; i++) if (messages[i]!.role === "user") starts.push(i);
  let best: ShiftResult | undefined;
  for (let k = 0; k < starts.length; k++) {
    const start = starts[k]!;
    if (start === head) continue; // nothing dropped yet
    const kept = [...messages.slice(0, head), ...messages.slice(start)];
    const ids = render(kept);
    const result = { messages: kept, ids, droppedMessages: start - head, droppedTokens: all.length - ids.length };
    if (ids.length <= limit) best = result;
    if (ids.length <= target) return result;
  }
  if (best) return best;
  // Even the newest turn alone leaves less than `reserve`: keep just it, and the reply gets
  // what is left (it stops when the context is full). Only a prompt that fills the context
  // outright is refused.
  const lastStart = starts.length > 0 ? starts[starts.length - 1]! : head;
  const last = [...messages.slice(0, head), ...messages.slice(lastStart)];
  const ids = lastStart === head ? all : render(last);
  if (ids.length < contextLength) {
    return { messages: last, ids, droppedMessages: lastStart - head, droppedTokens: all.length - ids.length };
  }
  throw new ActiveflowError(
    "CONTEXT_FULL",
    `the last message needs ${ids.length} tokens with the system prompt, and the context holds ${contextLength}; use a larger --ctx or a shorter message`,
  );
}
