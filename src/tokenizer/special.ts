// Splits input text on special-token texts before BPE/SPM, as llama.cpp's
// tokenizer_st_partition: tokens are tried longest first; each one splits every remaining
// text fragment at all of its occurrences. User-defined tokens always split; control and
// unknown tokens only when parseSpecial is set, so user text cannot inject them.
import { ATTR_CONTROL, ATTR_LSTRIP, ATTR_RSTRIP, ATTR_UNKNOWN, ATTR_USER_DEFINED, type Vocab } from "./vocab.js";

export type Fragment = { text: string } | { id: number };

const utf8 = new TextEncoder();

// C isspace() in the "C" locale, which llama.cpp uses for LSTRIP/RSTRIP.
const isSpace = (c: number): boolean => c === 0x20 || (c >= 0x09 && c <= 0x0d);

// Special token ids sorted by UTF-8 length, longest first (ties by id, for determinism).
export function specialTokenOrder(vocab: Vocab): number[] {
  const ids: number[] = [];
  const mask = ATTR_CONTROL | ATTR_USER_DEFINED | ATTR_UNKNOWN;
  vocab.attrs.forEach((a, id) => {
    if (a & mask) ids.push(id);
  });
  const bytes = new Map(ids.map((id) => [id, utf8.encode(vocab.tokens[id]).length]));
  return ids.sort((a, b) => (bytes.get(b) as number) - (bytes.get(a) as number) || a - b);
}

export function partitionSpecial(text: string, vocab: Vocab, order: readonly number[], parseSpecial: boolean): Fragment[] {
  if (text === "") return [];
  let frags: Fragment[] = [{ text }];
  for (const id of order) {
    const attr = vocab.attrs[id] as number;
    if (!parseSpecial && attr & (ATTR_CONTROL | ATTR_UNKNOWN)) continue;
    const tok = vocab.tokens[id] as string;
    if (!frags.some((f) => "text" in f && f.text.includes(tok))) continue;
    const next: Fragment[] = [];
    for (const f of frags) {
      if (!("text" in f)) {
        next.push(f);
        continue;
      }
      let from = 0;
      for (;;) {
        const at = f.text.indexOf(tok, from);
        if (at < 0) break;
        let leftEnd = at;
        if (attr & ATTR_LSTRIP) while (leftEnd > from && isSpace(f.text.charCodeAt(leftEnd - 1))) leftEnd--;
        if (leftEnd > from) next.push({ text: f.text.slice(from, leftEnd) });
        next.push({ id });
        from = at + tok.length;
        if (attr & ATTR_RSTRIP) while (from < f.text.length && isSpace(f.text.charCodeAt(from))) from++;
      }
      if (from < f.text.length) next.push({ text: f.text.slice(from) });
    }
    frags = next;
  }
  return frags;
}
