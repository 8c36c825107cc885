// SentencePiece-style BPE (tokenizer.ggml.model = "llama"), as llama.cpp's
// llm_tokenizer_spm_session: start from UTF-8 chars, repeatedly merge the adjacent pair
// whose concatenation is a vocab token with the highest score (ties: leftmost), then
// emit each final symbol, or its bytes as <0xNN> tokens when it is not in the vocab.
import { MinHeap } from "./bpe.js";
import type { Vocab } from "./vocab.js";

interface Bigram {
  left: number;
  right: number;
  score: number;
  size: number; // UTF-16 units of left + right when queued
}

const bigramBefore = (a: Bigram, b: Bigram): boolean =>
  a.score > b.score || (a.score === b.score && a.left < b.left);

const utf8 = new TextEncoder();

// "▁" (U+2581), SentencePiece's visible space.
export const SPM_SPACE = "\u2581";

export class SpmEncoder {
  private readonly byteIds: Int32Array; // [256] token id per byte, -1 if none

  constructor(private readonly vocab: Vocab) {
    this.byteIds = new Int32Array(256).fill(-1);
    for (let b = 0; b < 256; b++) {
      const hex = b.toString(16).toUpperCase().padStart(2, "0");
      // <0xNN> first, then the byte as a one-char string (llama.cpp's byte_to_token).
      const id = vocab.tokenToId.get(`<0x${hex}>`) ?? (b < 0x80 ? vocab.tokenToId.get(String.fromCharCode(b)) : undefined);
      this.byteIds[b] = id ?? vocab.unk ?? -1;
    }
  }

  // Appends the ids of one fragment; the caller adds the space prefix and we escape spaces.
  encode(raw: string, out: number[]): void {
    const text = raw.replaceAll(" ", SPM_SPACE);
    const { tokenToId, scores } = this.vocab;
    const chars = Array.from(text);
    const n = chars.length;
    if (n === 0) return;
    const start = new Int32Array(n);
    const len = new Int32Array(n);
    const prev = new Int32Array(n);
    const next = new Int32Array(n);
    let pos = 0;
    for (let i = 0; i < n; i++) {
      start[i] = pos;
      len[i] = (chars[i] as string).length;
      pos += len[i] as number;
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    const queue = new MinHeap<Bigram>(bigramBefore);
    const tryAdd = (left: number, right: number) => {
      if (left < 0 || right < 0) return;
      const size = (len[left] as number) + (len[right] as number);
      const id = tokenToId.get(text.substr(start[left] as number, size));
      if (id === undefined) return;
      queue.push({ left, right, score: scores[id] as number, size });
    };
    for (let i = 1; i < n; i++) tryAdd(i - 1, i);

    for (;;) {
      const bg = queue.pop();
      if (bg === undefined) break;
      const ll = len[bg.left] as number;
      const rl = len[bg.right] as number;
      if (ll === 0 || rl === 0 || ll + rl !== bg.size) continue;
      len[bg.left] = ll + rl;
      len[bg.right] = 0;
      const after = next[bg.right] as number;
      next[bg.left] = after;
      if (after >= 0) prev[after] = bg.left;
      tryAdd(prev[bg.left] as number, bg.left);
      tryAdd(bg.left, after);
    }

    for (let i = 0; i >= 0; i = next[i] as number) {
      const sym = text.substr(start[i] as number, len[i] as number);
      const id = tokenToId.get(sym);
      if (id !== undefined) {
        out.push(id);
        continue;
      }
      // Merged symbols are always tokens, so only single unknown chars get here.
      for (const b of utf8.encode(sym)) {
        const bid = this.byteIds[b] as number;
        if (bid >= 0) out.push(bid);
      }
    }
  }
}
