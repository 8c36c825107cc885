// Pre-tokenizer: splits text into words before BPE, with the regex list llama.cpp assigns
// to each `tokenizer.ggml.pre` value (llama-vocab.cpp, llm_tokenizer_bpe). Each regex of a
// list splits every piece produced by the one before; text between matches is kept as its
// own piece (unicode_regex_split_stl does the same).

// llama.cpp's whitespace set (unicode_set_whitespace). JS `\s` differs: it lacks U+0085 and
// adds U+FEFF, so every pattern below spells whitespace with this class instead.
const WS = "\\t-\\r \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000";
const S = `[${WS}]`;
const NS = `[^${WS}]`;

// The GPT-2 pattern as llama.cpp writes it (no trailing `\s+`; a lone whitespace before a
// non-space falls between matches and becomes its own piece, which has the same effect).
const GPT2 =
  `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${WS}\\p{L}\\p{N}]+|${S}+(?!${NS})`;

// Contractions in either case, as llama.cpp rewrites HF's `(?i:'s|...)`.
const CONTRACTIONS = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";

// Llama 3 / Qwen 2 family; `digits` is `\p{N}{1,3}` for llama3 and `\p{N}` for qwen2.
function llama3Like(digits: string): string {
  return (
    `${CONTRACTIONS}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|${digits}` +
    `| ?[^${WS}\\p{L}\\p{N}]+[\\r\\n]*|${S}*[\\r\\n]+|${S}+(?!${NS})|${S}+`
  );
}

const TEKKEN =
  "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+" +
  "|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*" +
  `|\\p{N}| ?[^${WS}\\p{L}\\p{N}]+[\\r\\n/]*|${S}*[\\r\\n]+|${S}+(?!${NS})|${S}+`;

// Regex lists per pre-tokenizer family (sources of llama-vocab.cpp, written out for JS).
const FAMILIES: Readonly<Record<string, readonly string[]>> = {
  default: ["[\\p{P}\\$\\+<=>\\^~\\|]+", GPT2, "\\p{N}+", "[0-9][0-9][0-9]"],
  gpt2: [GPT2],
  // starcoder, refact, command-r, smollm, codeshell, exaone, minerva: digits one by one first.
  starcoder: ["\\p{N}", GPT2],
  llama3: [llama3Like("\\p{N}{1,3}")],
  qwen2: [llama3Like("\\p{N}")],
  tekken: [TEKKEN],
  falcon: ["[\\p{P}\\$\\+<=>\\^~\\|`]+", GPT2, "[0-9][0-9][0-9]"],
  "deepseek-llm": [
    "[\\r\\n]",
    "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
    "\\s?[!-/:-~！-／：-～‘-‟　-。]+",
    "\\s+$",
    "[一-龥ࠀ-一가-퟿]+",
    "\\p{N}+",
  ],
};

// tokenizer.ggml.pre value -> family, as llama-vocab.cpp maps them.
const PRE_TO_FAMILY: Readonly<Record<string, string>> = {
  "": "default",
  default: "default",
  "gpt-2": "gpt2", "phi-2": "gpt2", "jina-es": "gpt2", "jina-de": "gpt2", gigachat: "gpt2",
  "jina-v2-es": "gpt2", "jina-v2-de": "gpt2", "jina-v1-en": "gpt2", "jina-v2-code": "gpt2",
  "roberta-bpe": "gpt2", mpt: "gpt2", olmo: "gpt2", jais: "gpt2", trillion: "gpt2",
  exaone4: "gpt2", mellum: "gpt2", "modern-bert": "gpt2", "a.x-4.0": "gpt2",
  "granite-docling": "gpt2",
  starcoder: "starcoder", refact: "starcoder", "command-r": "starcoder", smollm: "starcoder",
  codeshell: "starcoder", exaone: "starcoder", "minerva-7b": "starcoder", mellum2: "starcoder",
  llama3: "llama3", "llama-v3": "llama3", "llama-bpe": "llama3", falcon3: "llama3",
  "falcon-h1": "llama3", pixtral: "llama3", "midm-2.0": "llama3", lfm2: "llama3",
  dbrx: "llama3", "smaug-bpe": "llama3", "chatglm-bpe": "llama3", glm4: "llama3",
  qwen2: "qwen2", "deepseek-r1-qwen": "qwen2", megrez: "qwen2", stablelm2: "qwen2",
  hunyuan: "qwen2", "grok-2": "qwen2", "solar-open": "qwen2", kormo: "qwen2", f2llmv2: "qwen2",
  tekken: "tekken",
  falcon: "falcon",
  "deepseek-llm": "deepseek-llm",
};

// Pre-tokenizers whose families also change encode/decode flags in llama.cpp.
export interface PreTokenizerInfo {
  family: string;
  // A word that is itself a vocab entry is emitted whole (llama3, tekken).
  ignoreMerges: boolean;
  // Default for add_bos when the GGUF has no tokenizer.ggml.add_bos_token.
  addBos: boolean;
  // llama.cpp's clean_up_tokenization_spaces pass on decode.
  cleanSpaces: boolean;
}

const IGNORE_MERGES = new Set(["llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral",
  "midm-2.0", "lfm2", "tekken"]);
const CLEAN_SPACES_OFF = new Set(["deepseek-llm", "deepseek-coder", "deepseek-v3", "command-r", "qwen2", "deepseek-r1-qwen", "kormo",
  "f2llmv2", "tekken", "smollm", "chameleon", "trillion", "granite-docling", "hunyuan", "grok-2",
  "solar-open", "viking", "poro-chat"]);

let warnedUnknown = new Set<string>();

// Resolves a tokenizer.ggml.pre value. Unknown values fall back to GPT-2 with one warning
// per value (llama.cpp refuses to load them; we prefer to run with a close split).
export function preTokenizerInfo(pre: string): PreTokenizerInfo {
  let family = PRE_TO_FAMILY[pre];
  if (family === undefined) {
    if (!warnedUnknown.has(pre)) {
      warnedUnknown.add(pre);
      process.stderr.write(
        `activeflow: unknown tokenizer.ggml.pre "${pre}", using the GPT-2 pre-tokenizer; ` +
          `token ids may differ from llama.cpp\n`,
      );
    }
    family = "gpt2";
  }
  return {
    family,
    ignoreMerges: IGNORE_MERGES.has(pre),
    addBos: family === "llama3" || pre === "tekken" || pre === "chameleon",
    cleanSpaces: !CLEAN_SPACES_OFF.has(pre),
  };
}

// For tests: forget which unknown values already warned.
export function resetPreTokenizerWarnings(): void {
  warnedUnknown = new Set();
}

// Splits text into pre-token words for one family.
export class PreTokenizer {
  readonly family: string;
  private readonly regexes: RegExp[];

  constructor(family: string) {
    const list = FAMILIES[family];
    if (list === undefined) throw new Error(`no pre-tokenizer family "${family}"`);
    this.family = family;
    this.regexes = list.map((src) => new RegExp(src, "gu"));
  }

  split(text: string): string[] {
    let pieces = [text];
    for (const re of this.regexes) {
      const next: string[] = [];
      for (const piece of pieces) splitOne(piece, re, next);
      pieces = next;
    }
    return pieces;
  }
}

// One regex over one piece: matches and the gaps between them, in order, none empty.
function splitOne(piece: string, re: RegExp, out: string[]): void {
  re.lastIndex = 0;
  let last = 0;
  for (;;) {
    const m = re.exec(piece);
    if (m === null) break;
    const start = m.index;
    const end = start + m[0].length;
    if (end === start) {
      // Zero-length match: step past it so the scan always advances.
      re.lastIndex = start + 1;
      continue;
    }
    if (start > last) out.push(piece.slice(last, start));
    out.push(m[0]);
    last = end;
  }
  if (last < piece.length) out.push(piece.slice(last));
}
