// Byte-level BPE vocabularies for synthetic models: the 256 GPT-2 byte tokens, a few
// merges, special tokens and filler, as the tokenizer.ggml.* metadata llama.cpp loads.
import { bool, i32Arr, str, strArr, u32, type GgufWriteValue } from "../gguf/writer.js";

// llama.cpp token types (llama_token_type).
export const TOKEN_NORMAL = 1;
export const TOKEN_CONTROL = 3;

// GPT-2's byte-to-unicode table: printable Latin-1 bytes stand for themselves, the other
// 68 bytes map to U+0100 upwards, so every byte is a visible one-character token.
export function byteToUnicode(): string[] {
  const out: string[] = new Array(256);
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    out[b] = String.fromCodePoint(printable ? b : next++);
  }
  return out;
}

export interface SynthVocab {
  tokens: string[];
  types: number[];
  merges: string[];
  // Id of each special token by its text.
  special: Map<string, number>;
}

// Byte tokens (id = byte value), then each merge's result, then specials, then filler
// `tok_<i>` up to `size` tokens.
export function buildVocab(merges: readonly string[], specials: readonly string[], size: number): SynthVocab {
  const tokens = byteToUnicode();
  const types = tokens.map(() => TOKEN_NORMAL);
  const seen = new Set(tokens);
  for (const m of merges) {
    const joined = m.replace(" ", "");
    if (!seen.has(joined)) {
      seen.add(joined);
      tokens.push(joined);
      types.push(TOKEN_NORMAL);
    }
  }
  const special = new Map<string, number>();
  for (const s of specials) {
    special.set(s, tokens.length);
    tokens.push(s);
    types.push(TOKEN_CONTROL);
  }
  for (let i = tokens.length; i < size; i++) {
    tokens.push(`tok_${i}`);
    types.push(TOKEN_NORMAL);
  }
  return { tokens, types, merges: [...merges], special };
}

export interface TokenizerMetadataOptions {
  pre: string;
  bos: number;
  eos: number;
  eot?: number;
  addBos: boolean;
  chatTemplate?: string;
}

// The tokenizer.ggml.* entries for a gpt2-style (byte-level BPE) vocab.
export function tokenizerMetadata(v: SynthVocab, o: TokenizerMetadataOptions): [string, GgufWriteValue][] {
  const out: [string, GgufWriteValue][] = [
    ["tokenizer.ggml.model", str("gpt2")],
    ["tokenizer.ggml.pre", str(o.pre)],
    ["tokenizer.ggml.tokens", strArr(v.tokens)],
    ["tokenizer.ggml.token_type", i32Arr(v.types)],
    ["tokenizer.ggml.merges", strArr(v.merges)],
    ["tokenizer.ggml.bos_token_id", u32(o.bos)],
    ["tokenizer.ggml.eos_token_id", u32(o.eos)],
    ["tokenizer.ggml.add_bos_token", bool(o.addBos)],
  ];
  if (o.eot !== undefined) out.push(["tokenizer.ggml.eot_token_id", u32(o.eot)]);
  if (o.chatTemplate !== undefined) out.push(["tokenizer.chat_template", str(o.chatTemplate)]);
  return out;
}
