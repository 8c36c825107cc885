// Tokenizer over a GGUF's vocabulary, matching llama.cpp's token ids (llama_tokenize) and
// text (llama_detokenize with remove_special = false, as node-llama-cpp calls it).
import { ActiveflowError } from "../errors.js";
import type { GgufFile, GgufValue } from "../gguf/types.js";
import { BpeEncoder, unicodeToBytes } from "./bpe.js";
import { ChatTemplate, noChatTemplate } from "./chat.js";
import { partitionSpecial, specialTokenOrder } from "./special.js";
import { SpmEncoder, SPM_SPACE } from "./spm.js";
import type { ChatMessage, EncodeOptions, Tokenizer } from "./types.js";
import {
  ATTR_BYTE, ATTR_CONTROL, ATTR_NORMAL, ATTR_UNKNOWN, ATTR_USER_DEFINED, readVocab, type Vocab,
} from "./vocab.js";

export type { ChatMessage, EncodeOptions, Tokenizer } from "./types.js";
export { readVocab, VOCAB_ARRAY_KEYS, type Vocab } from "./vocab.js";
export { PreTokenizer, preTokenizerInfo } from "./pretokenize.js";
export { BYTE_TO_CHAR, CHAR_TO_BYTE, bpeMerge, bytesToUnicode, unicodeToBytes } from "./bpe.js";
export { partitionSpecial, type Fragment } from "./special.js";
export { ChatTemplate } from "./chat.js";

const utf8 = new TextEncoder();
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const EMPTY: Uint8Array = new Uint8Array(0);

export class GgufTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  readonly stopIds: ReadonlySet<number>;
  readonly vocab: Vocab;
  private readonly specialOrder: number[];
  private readonly bpe: BpeEncoder | undefined;
  private readonly spm: SpmEncoder | undefined;
  private readonly pieces: [Array<Uint8Array | undefined>, Array<Uint8Array | undefined>]; // [plain, special] per id
  private chat: ChatTemplate | undefined;

  constructor(metadata: ReadonlyMap<string, GgufValue>, private readonly source = "<metadata>") {
    this.vocab = readVocab(metadata);
    const v = this.vocab;
    this.vocabSize = v.tokens.length;
    this.bosId = v.bos;
    this.eosId = v.eos;
    const stops = new Set(v.eogIds);
    this.stopIds = stops;
    this.specialOrder = specialTokenOrder(v);
    this.bpe = v.model === "gpt2" ? new BpeEncoder(v) : undefined;
    this.spm = v.model === "llama" ? new SpmEncoder(v) : undefined;
    this.pieces = [new Array(this.vocabSize), new Array(this.vocabSize)];
  }

  encode(input: string, options: EncodeOptions = {}): number[] {
    const v = this.vocab;
    // llama.cpp gets UTF-8 from Node, where a lone surrogate has become U+FFFD.
    const text = input.replace(LONE_SURROGATE, "\uFFFD");
    const addSpecial = options.addSpecial ?? false;
    const frags = partitionSpecial(text, v, this.specialOrder, options.parseSpecial ?? false);
    const out: number[] = [];
    if (addSpecial && v.addBos && v.bos !== undefined) out.push(v.bos);
    if (this.spm !== undefined) {
      // SentencePiece adds the space prefix at the start and after every special token.
      let prevSpecial = true;
      for (const f of frags) {
        if ("id" in f) {
          out.push(f.id);
          prevSpecial = true;
        } else {
          this.spm.encode(v.addSpacePrefix && prevSpecial ? ` ${f.text}` : f.text, out);
          prevSpecial = false;
        }
      }
    } else {
      const bpe = this.bpe as BpeEncoder;
      for (const f of frags) {
        if ("id" in f) out.push(f.id);
        else bpe.encode(f.text, out);
      }
    }
    if (addSpecial && v.addEos && v.eos !== undefined) out.push(v.eos);
    return out;
  }

  decode(ids: readonly number[], options: { skipSpecial?: boolean } = {}): string {
    const special = !(options.skipSpecial ?? false);
    const parts: Uint8Array[] = [];
    let total = 0;
    // llama.cpp strips one leading space of the first piece when add_space_prefix is set.
    let removeSpace = this.vocab.addSpacePrefix;
    for (const id of ids) {
      let p: Uint8Array = this.piece(id, special);
      if (removeSpace && p.length > 0 && p[0] === 0x20) p = p.subarray(1);
      removeSpace = false;
      parts.push(p);
      total += p.length;
    }
    let bytes: Uint8Array = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      bytes.set(p, at);
      at += p.length;
    }
    if (this.vocab.model === "gpt2" && this.vocab.pre.cleanSpaces) bytes = cleanSpaces(bytes);
    return new TextDecoder().decode(bytes);
  }

  // Control tokens render as their text here; streaming callers that hide them can ask isControl.
  tokenBytes(id: number): Uint8Array {
    return this.piece(id, true);
  }

  // True for control and unknown tokens: the ones decode drops when skipSpecial is set.
  isControl(id: number): boolean {
    return ((this.vocab.attrs[id] ?? 0) & (ATTR_UNKNOWN | ATTR_CONTROL)) !== 0;
  }

  applyChatTemplate(messages: readonly ChatMessage[], options: { addGenerationPrompt?: boolean } = {}): string {
    const v = this.vocab;
    if (this.chat === undefined) {
      if (v.chatTemplate === undefined) throw noChatTemplate(this.source);
      this.chat = new ChatTemplate(v.chatTemplate);
    }
    return this.chat.render(messages, options.addGenerationPrompt ?? false, {
      bosToken: v.bos === undefined ? "" : (v.tokens[v.bos] as string),
      eosToken: v.eos === undefined ? "" : (v.tokens[v.eos] as string),
    });
  }

  // The bytes llama.cpp's token_to_piece writes for one token (lstrip = 0).
  private piece(id: number, special: boolean): Uint8Array {
    const v = this.vocab;
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new ActiveflowError("TOKENIZER", `token id ${id} is out of range; the vocabulary has ${this.vocabSize} tokens`);
    }
    const cache = this.pieces[special ? 1 : 0];
    const hit = cache[id];
    if (hit !== undefined) return hit;
    const attr = v.attrs[id] as number;
    const text = v.tokens[id] as string;
    let bytes: Uint8Array = EMPTY;
    if (!special && attr & (ATTR_UNKNOWN | ATTR_CONTROL)) {
      bytes = EMPTY;
    } else if (attr & (ATTR_UNKNOWN | ATTR_CONTROL | ATTR_USER_DEFINED)) {
      bytes = utf8.encode(text);
    } else if (attr & ATTR_NORMAL) {
      bytes = v.model === "gpt2" ? unicodeToBytes(text) : utf8.encode(text.replaceAll(SPM_SPACE, " "));
    } else if (attr & ATTR_BYTE && v.model === "llama") {
      // <0xNN>: llama.cpp parses the hex after "<0x".
      bytes = Uint8Array.of(parseInt(text.slice(3), 16) & 0xff);
    }
    cache[id] = bytes;
    return bytes;
  }
}

// llama.cpp's clean_up_tokenization_spaces passes over the detokenized bytes: drop the
// space before ? ! . , ; turn " ' " into "'"; drop the space before 's 'm 're 've.
function cleanSpaces(t: Uint8Array): Uint8Array {
  const SP = 0x20;
  const AP = 0x27;
  const a = Array.from(t);
  // first pass
  let n = a.length;
  let total = n ? 1 : 0;
  for (let i = 1; i < n; i++) {
    const x = a[i] as number;
    if (a[i - 1] === SP && (x === 0x3f || x === 0x21 || x === 0x2e || x === 0x2c)) total--;
    a[total++] = x;
  }
  // second pass
  n = total;
  total = n ? 1 : 0;
  for (let i = 1; i < n; i++) {
    const x = a[i] as number;
    if (x === AP && i + 1 < n && a[i - 1] === SP && a[i + 1] === SP) {
      total--;
      a[++i] = 0;
    }
    a[total++] = x;
  }
  // third pass
  n = total;
  total = n ? 1 : 0;
  for (let i = 1; i < n; i++) {
    const x = a[i] as number;
    if (a[i - 1] === SP && x === AP && i + 1 < n) {
      const x1 = a[i + 1];
      if (x1 === 0x73 || x1 === 0x6d) total--; // 's 'm
      else if (i + 2 < n) {
        const x2 = a[i + 2];
        if ((x1 === 0x72 && x2 === 0x65) || (x1 === 0x76 && x2 === 0x65)) total--; // 're 've
      }
    }
    a[total++] = x;
  }
  return Uint8Array.from(a.slice(0, total));
}

export function createTokenizer(gguf: GgufFile): GgufTokenizer {
  return new GgufTokenizer(gguf.metadata, gguf.path);
}
