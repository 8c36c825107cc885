// The vocabulary as llama.cpp loads it from GGUF metadata (llama_vocab::impl::load): token
// texts, attributes, scores, BPE merge ranks, special ids and the add_* flags.
import { ActiveflowError } from "../errors.js";
import type { GgufValue } from "../gguf/types.js";
import { MergeRanks } from "./mergeRanks.js";
import { preTokenizerInfo, type PreTokenizerInfo } from "./pretokenize.js";

// Token attribute bits (llama_token_attr); token_type values map onto them.
export const ATTR_UNDEFINED = 0;
export const ATTR_UNKNOWN = 1 << 0;
export const ATTR_UNUSED = 1 << 1;
export const ATTR_NORMAL = 1 << 2;
export const ATTR_CONTROL = 1 << 3;
export const ATTR_USER_DEFINED = 1 << 4;
export const ATTR_BYTE = 1 << 5;
// Eat whitespace left / right of the token when partitioning text (set by model name).
export const ATTR_LSTRIP = 1 << 7;
export const ATTR_RSTRIP = 1 << 8;

// tokenizer.ggml.token_type values (GGUF / llama_token_type).
const TYPE_TO_ATTR: Readonly<Record<number, number>> = {
  0: ATTR_UNDEFINED, 1: ATTR_NORMAL, 2: ATTR_UNKNOWN, 3: ATTR_CONTROL,
  4: ATTR_USER_DEFINED, 5: ATTR_UNUSED, 6: ATTR_BYTE,
};

// Texts llama.cpp treats as end-of-generation whatever their type (llama-vocab.cpp, EOG list).
const EOG_TEXTS = new Set([
  "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
  "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
  "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
  "<｜end▁of▁sentence｜>", "[e~[",
]);
// Texts that name the end-of-turn token when tokenizer.ggml.eot_token_id is absent.
const EOT_TEXTS = new Set([
  "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
  "<EOT>", "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>", "<end_of_utterance>",
]);

// The per-token and per-merge arrays readVocab reads: once a tokenizer is built, a second
// header of the same model can be read without them (readGguf's omit).
export const VOCAB_ARRAY_KEYS: ReadonlySet<string> = new Set([
  "tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.scores", "tokenizer.ggml.merges",
]);

export type VocabModel = "gpt2" | "llama";

export interface Vocab {
  model: VocabModel;
  pre: PreTokenizerInfo;
  tokens: string[]; // [n_vocab] token texts as stored (byte-level BPE: GPT-2 unicode chars)
  attrs: Uint16Array; // [n_vocab] ATTR_* bits
  scores: Float32Array; // [n_vocab] SentencePiece scores (0 when absent)
  tokenToId: Map<string, number>;
  // BPE merge ranks by the pair of symbols a merge joins; empty for SentencePiece.
  mergeRanks: MergeRanks;
  bos: number | undefined;
  eos: number | undefined;
  eot: number | undefined;
  eom: number | undefined;
  unk: number | undefined;
  pad: number | undefined;
  addBos: boolean;
  addEos: boolean;
  addSpacePrefix: boolean;
  eogIds: Set<number>;
  chatTemplate: string | undefined;
}

export { mergeKey } from "./mergeRanks.js";

type Meta = ReadonlyMap<string, GgufValue>;

function bad(key: string, expected: string, got: unknown): ActiveflowError {
  const shown = Array.isArray(got) ? `array(${got.length})` : typeof got;
  return new ActiveflowError("TOKENIZER", `GGUF metadata ${key}: expected ${expected}, got ${shown}`);
}

function optString(meta: Meta, key: string): string | undefined {
  const v = meta.get(key);
  if (v === undefined) return undefined;
  if (typeof v !== "string") throw bad(key, "a string", v);
  return v;
}

function optBool(meta: Meta, key: string): boolean | undefined {
  const v = meta.get(key);
  if (v === undefined) return undefined;
  if (typeof v === "boolean") return v;
  if (typeof v === "number") return v !== 0;
  throw bad(key, "a bool", v);
}

function optId(meta: Meta, key: string, nVocab: number): number | undefined {
  const v = meta.get(key);
  if (v === undefined) return undefined;
  const n = typeof v === "bigint" ? Number(v) : v;
  if (typeof n !== "number" || !Number.isInteger(n)) throw bad(key, "an integer token id", v);
  // llama.cpp warns and keeps its default for out-of-range ids; -1 style values mean "none".
  if (n < 0 || n >= nVocab) return undefined;
  return n;
}

function optStrings(meta: Meta, key: string): string[] | undefined {
  const v = meta.get(key);
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) throw bad(key, "an array of strings", v);
  return v as string[];
}

function optNumbers(meta: Meta, key: string): ArrayLike<number> | undefined {
  const v = meta.get(key);
  if (v === undefined) return undefined;
  if (v instanceof Float32Array || v instanceof Int32Array || v instanceof Uint32Array) return v;
  if (Array.isArray(v) && v.every((x) => typeof x === "number")) return v as number[];
  throw bad(key, "an array of numbers", v);
}

// llama.cpp's text-based fixups after its EOG scan: gpt-oss channel tokens always render,
// <|end|> stops nothing when <|return|>/<|call|> (or <|calls|>/<|flush|>) exist, and </s>
// stops nothing when <|tool_response> exists.
function fixupsByName(tokens: string[], attrs: Uint16Array, tokenToId: Map<string, number>, eog: Set<number>): void {
  for (const t of ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"]) {
    const id = tokenToId.get(t);
    if (id !== undefined) attrs[id] = ATTR_USER_DEFINED;
  }
  const eogText = new Set([...eog].map((id) => tokens[id]));
  const end = tokenToId.get("<|end|>");
  const hasCall = eogText.has("<|call|>") || eogText.has("<|calls|>");
  if (end !== undefined && eog.has(end) && hasCall && (eogText.has("<|return|>") || eogText.has("<|flush|>"))) {
    eog.delete(end);
    attrs[end] = ATTR_USER_DEFINED;
  }
  const s = tokenToId.get("</s>");
  if (s !== undefined && eog.has(s) && eogText.has("<|tool_response>")) {
    eog.delete(s);
    attrs[s] = ATTR_NORMAL;
  }
}

// Per-model LSTRIP/RSTRIP flags llama.cpp sets from general.name / pre / architecture.
function stripAttrsByName(meta: Meta, attrs: Uint16Array, tokenToId: Map<string, number>): void {
  const str = (key: string) => {
    const v = meta.get(key);
    return typeof v === "string" ? v : "";
  };
  const name = str("general.name").toLowerCase();
  const pre = str("tokenizer.ggml.pre");
  const arch = str("general.architecture");
  const set = (text: string, bit: number, on: boolean) => {
    const id = tokenToId.get(text);
    if (id !== undefined) attrs[id] = on ? (attrs[id] as number) | bit : (attrs[id] as number) & ~bit;
  };
  const has = (s: string, parts: string[]) => parts.some((p) => s.includes(p));
  if (has(pre, ["jina-v2-de", "jina-v2-es", "jina-v2-code"]) || has(arch, ["nomic-bert-moe", "jina-bert-v3"])) {
    set("<mask>", ATTR_LSTRIP, true);
  } else if (has(name, ["phi-3", "phi3"])) {
    attrs.forEach((a, id) => {
      if (a & (ATTR_CONTROL | ATTR_USER_DEFINED | ATTR_UNKNOWN)) attrs[id] = a | ATTR_RSTRIP;
    });
    set("</s>", ATTR_RSTRIP, true);
    for (const t of ["<unk>", "<s>", "<|endoftext|>"]) set(t, ATTR_RSTRIP, false);
  } else if (name.includes("modern-bert")) {
    set("[MASK]", ATTR_LSTRIP, true);
  }
}

export function readVocab(meta: Meta): Vocab {
  const modelName = optString(meta, "tokenizer.ggml.model");
  if (modelName !== "gpt2" && modelName !== "llama") {
    throw new ActiveflowError(
      "TOKENIZER",
      `GGUF metadata tokenizer.ggml.model is ${JSON.stringify(modelName)}; expected "gpt2" (byte-level BPE) or "llama" (SentencePiece)`,
    );
  }
  const model: VocabModel = modelName;
  const raw = optStrings(meta, "tokenizer.ggml.tokens");
  if (raw === undefined || raw.length === 0) {
    throw new ActiveflowError("TOKENIZER", "GGUF metadata tokenizer.ggml.tokens is missing or empty");
  }
  const n = raw.length;
  const types = optNumbers(meta, "tokenizer.ggml.token_type");
  const scoreArr = optNumbers(meta, "tokenizer.ggml.scores");
  for (const [key, arr] of [["token_type", types], ["scores", scoreArr]] as const) {
    if (arr !== undefined && arr.length !== n) {
      throw new ActiveflowError("TOKENIZER", `GGUF metadata tokenizer.ggml.${key} has ${arr.length} entries; expected ${n} (one per token)`);
    }
  }

  const tokens = new Array<string>(n);
  const attrs = new Uint16Array(n);
  const scores = new Float32Array(n);
  const tokenToId = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    // llama.cpp renames empty tokens so they can never match text.
    const text = raw[i] === "" ? `[EMPTY_${i}]` : (raw[i] as string);
    tokens[i] = text;
    tokenToId.set(text, i);
    attrs[i] = types === undefined ? ATTR_NORMAL : (TYPE_TO_ATTR[types[i] as number] ?? ATTR_UNDEFINED);
    if (scoreArr !== undefined) scores[i] = scoreArr[i] as number;
  }

  let mergeRanks = new MergeRanks([], tokenToId);
  let pre: PreTokenizerInfo;
  let addBos: boolean;
  let addSpacePrefix: boolean;
  let bos: number | undefined;
  let eos: number | undefined;
  let unk: number | undefined;
  if (model === "gpt2") {
    const merges = optStrings(meta, "tokenizer.ggml.merges");
    if (merges === undefined) {
      throw new ActiveflowError("TOKENIZER", "GGUF metadata tokenizer.ggml.merges is missing; a gpt2 (BPE) tokenizer needs it");
    }
    mergeRanks = new MergeRanks(merges, tokenToId);
    pre = preTokenizerInfo(optString(meta, "tokenizer.ggml.pre") ?? "");
    addBos = pre.addBos;
    addSpacePrefix = false;
    // llama.cpp's GPT-2 defaults: bos = eos = 11, no unk.
    bos = n > 11 ? 11 : undefined;
    eos = bos;
    unk = undefined;
  } else {
    pre = { family: "default", ignoreMerges: false, addBos: true, cleanSpaces: false };
    addBos = true;
    addSpacePrefix = true;
    bos = n > 1 ? 1 : undefined;
    eos = n > 2 ? 2 : undefined;
    unk = 0;
  }
  addSpacePrefix = optBool(meta, "tokenizer.ggml.add_space_prefix") ?? addSpacePrefix;
  addBos = optBool(meta, "tokenizer.ggml.add_bos_token") ?? addBos;
  const addEos = optBool(meta, "tokenizer.ggml.add_eos_token") ?? false;
  const has = (key: string) => meta.has(`tokenizer.ggml.${key}`);
  if (has("bos_token_id")) bos = optId(meta, "tokenizer.ggml.bos_token_id", n) ?? bos;
  if (has("eos_token_id")) eos = optId(meta, "tokenizer.ggml.eos_token_id", n) ?? eos;
  if (has("unknown_token_id")) unk = optId(meta, "tokenizer.ggml.unknown_token_id", n) ?? unk;
  let eot = optId(meta, "tokenizer.ggml.eot_token_id", n);
  let eom = optId(meta, "tokenizer.ggml.eom_token_id", n);
  const pad = optId(meta, "tokenizer.ggml.padding_token_id", n);

  // Auto-detect EOT/EOM by text and mark EOG tokens as control, as llama.cpp does.
  const eogIds = new Set<number>();
  for (let i = 0; i < n; i++) {
    const text = tokens[i] as string;
    if (eot === undefined && EOT_TEXTS.has(text)) {
      eot = i;
      attrs[i] = (attrs[i] as number) | ATTR_CONTROL;
    }
    if (eom === undefined && text === "<|eom_id|>") {
      eom = i;
      attrs[i] = (attrs[i] as number) | ATTR_CONTROL;
    }
    if (EOG_TEXTS.has(text)) {
      eogIds.add(i);
      attrs[i] = (attrs[i] as number) | ATTR_CONTROL;
    }
  }
  for (const id of [eos, eot, eom]) if (id !== undefined) eogIds.add(id);
  fixupsByName(tokens, attrs, tokenToId, eogIds);
  stripAttrsByName(meta, attrs, tokenToId);

  return {
    model, pre, tokens, attrs, scores, tokenToId, mergeRanks,
    bos, eos, eot, eom, unk, pad, addBos, addEos, addSpacePrefix, eogIds,
    chatTemplate: optString(meta, "tokenizer.chat_template"),
  };
}
