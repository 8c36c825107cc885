// Byte-level BPE (tokenizer.ggml.model = "gpt2"), as llama.cpp's llm_tokenizer_bpe_session:
// each pre-token word is UTF-8 encoded, its bytes mapped to GPT-2's printable unicode chars,
// then adjacent symbols are merged lowest merge rank first (ties: leftmost first).
import { mapLookup, type MergeLookup } from "./mergeRanks.js";
import type { Vocab } from "./vocab.js";
import { PreTokenizer } from "./pretokenize.js";

// GPT-2's reversible byte <-> printable char table: printable Latin-1 bytes map to
// themselves, the other 68 bytes to U+0100 upwards in byte order.
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const table = new Array<string>(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = String.fromCharCode(printable ? b : 256 + extra++);
  }
  return table;
})();

export const CHAR_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]));

const utf8 = new TextEncoder();

export function bytesToUnicode(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += BYTE_TO_CHAR[b];
  return s;
}

// Undoes the byte mapping of a token text. Chars outside the table are written the way
// llama_decode_text does ("[UNK_BYTE_0x..<text>]") so a bad vocab entry stays visible.
export function unicodeToBytes(text: string): Uint8Array {
  const out: number[] = [];
  for (const ch of text) {
    const b = CHAR_TO_BYTE.get(ch);
    if (b !== undefined) {
      out.push(b);
    } else {
      const hex = Array.from(utf8.encode(ch), (x) => x.toString(16).padStart(2, "0")).join("");
      out.push(...utf8.encode(`[UNK_BYTE_0x${hex}${text}]`));
    }
  }
  return Uint8Array.from(out);
}

// Binary min-heap over a caller's ordering, so a word of n symbols merges in O(n log n).
export class MinHeap<T> {
  private readonly items: T[] = [];
  constructor(private readonly before: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.items.length;
  }

  push(item: T): void {
    const a = this.items;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(a[i] as T, a[p] as T)) break;
      [a[i], a[p]] = [a[p] as T, a[i] as T];
      i = p;
    }
  }

  pop(): T | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last !== undefined) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.before(a[l] as T, a[m] as T)) m = l;
        if (r < a.length && this.before(a[r] as T, a[m] as T)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m] as T, a[i] as T];
        i = m;
      }
    }
    return top;
  }
}

interface Bigram {
  left: number; // symbol index
  right: number;
  rank: number;
  size: number; // chars of left + right when queued; a mismatch later means it is stale
}

const bigramBefore = (a: Bigram, b: Bigram): boolean =>
  a.rank < b.rank || (a.rank === b.rank && a.left < b.left);

// Merges one byte-mapped word into symbol strings by merge rank (a Map is keyed by mergeKey).
export function bpeMerge(word: string, merges: MergeLookup | ReadonlyMap<string, number>): string[] {
  const ranks = merges instanceof Map ? mapLookup(merges) : (merges as MergeLookup);
  // Symbols: one per char of the mapped word (every mapped byte is one UTF-16 unit).
  const n = word.length;
  const start = new Int32Array(n);
  const len = new Int32Array(n);
  const prev = new Int32Array(n);
  const next = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    start[i] = i;
    len[i] = 1;
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  const text = (i: number) => word.substr(start[i] as number, len[i] as number);
  const queue = new MinHeap<Bigram>(bigramBefore);
  const tryAdd = (left: number, right: number) => {
    if (left < 0 || right < 0) return;
    const rank = ranks.rank(text(left), text(right));
    if (rank === undefined) return;
    queue.push({ left, right, rank, size: (len[left] as number) + (len[right] as number) });
  };
  for (let i = 1; i < n; i++) tryAdd(i - 1, i);

  for (;;) {
    const bg = queue.pop();
    if (bg === undefined) break;
    const ll = len[bg.left] as number;
    const rl = len[bg.right] as number;
    if (ll === 0 || rl === 0 || ll + rl !== bg.size || next[bg.left] !== bg.right) continue;
    len[bg.left] = ll + rl;
    len[bg.right] = 0;
    const after = next[bg.right] as number;
    next[bg.left] = after;
    if (after >= 0) prev[after] = bg.left;
    tryAdd(prev[bg.left] as number, bg.left);
    tryAdd(bg.left, after);
  }

  const out: string[] = [];
  for (let i = n > 0 ? 0 : -1; i >= 0; i = next[i] as number) out.push(text(i));
  return out;
}

// Words per cache before it is dropped; wikitext needs a few thousand.
const CACHE_LIMIT = 50_000;

export class BpeEncoder {
  private readonly pre: PreTokenizer;
  private cache = new Map<string, readonly number[]>();

  constructor(private readonly vocab: Vocab) {
    this.pre = new PreTokenizer(vocab.pre.family);
  }

  // Appends the ids of one raw-text fragment (no special tokens inside) to `out`.
  encode(text: string, out: number[]): void {
    for (const word of this.pre.split(text)) {
      let ids = this.cache.get(word);
      if (ids === undefined) {
        ids = this.encodeWord(word);
        if (this.cache.size >= CACHE_LIMIT) this.cache = new Map();
        this.cache.set(word, ids);
      }
      for (const id of ids) out.push(id);
    }
  }

  private encodeWord(word: string): number[] {
    const { tokenToId, mergeRanks, pre } = this.vocab;
    const mapped = bytesToUnicode(utf8.encode(word));
    const whole = tokenToId.get(mapped);
    if (pre.ignoreMerges && whole !== undefined) return [whole];
    const ids: number[] = [];
    for (const sym of bpeMerge(mapped, mergeRanks)) {
      const id = tokenToId.get(sym);
      if (id !== undefined) {
        ids.push(id);
        continue;
      }
      // llama.cpp falls back to one token per UTF-8 byte of the symbol text; only ASCII
      // chars are whole one-byte strings, so other chars are dropped.
      for (const ch of sym) {
        const one = ch.charCodeAt(0) < 0x80 ? tokenToId.get(ch) : undefined;
        if (one !== undefined) ids.push(one);
      }
    }
    return ids;
  }
}
