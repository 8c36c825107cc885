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

// Qwen 3.5: letters keep their combining marks.
const QWEN35 =
  `${CONTRACTIONS}|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}` +
  `| ?[^${WS}\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|${S}*[\\r\\n]+|${S}+(?!${NS})|${S}+`;

// GPT-4o / Llama 4: cased words with optional contraction, digits in threes.
const GPT4O =
  `[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+${CONTRACTIONS}?` +
  `|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*${CONTRACTIONS}?` +
  `|\\p{N}{1,3}| ?[^${WS}\\p{L}\\p{N}]+[\\r\\n/]*|${S}*[\\r\\n]+|${S}+(?!${NS})|${S}+`;

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
  // Bloom / Poro / GPT-3 Finnish: words without the listed punctuation, an optional space first.
  bloom: [` ?[^(${WS}|.,!?\u2026\u3002\uFF0C\u3001\u0964\u06D4\u060C)]+`],
  viking: [` ?[^(${WS}|.,!?\u2026\u3002\uFF0C\u3001\u0964\u06D4\u060C)]+`, "\\p{N}"],
  qwen35: [QWEN35],
  "gpt-4o": [GPT4O],
  "deepseek-coder": ["[\\r\\n]", `${S}?\\p{L}+`, `${S}?\\p{P}+`, "[\\u4E00-\\u9FA5\\u0800-\\u4E00\\uAC00-\\uD7FF]+", "\\p{N}"],
  falcon: ["[\\p{P}\\$\\+<=>\\^~\\|`]+", GPT2, "[0-9][0-9][0-9]"],
  // Its `\s` means llama.cpp's whitespace set too (std::wregex sees non-ASCII spaces as \v).
  "deepseek-llm": [
    "[\r\n]",
    "\\s?[A-Za-z\u00B5\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u01BA\u01BC-\u01BF\u01C4-\u0293\u0295-\u02AF\u0370-\u0373\u0376\u0377\u037B-\u037D\u037F\u0386\u0388-\u038A\u038C\u038E-\u03A1\u03A3-\u03F5\u03F7-\u0481\u048A-\u052F\u0531-\u0556\u10A0-\u10C5\u13A0-\u13F5\u13F8-\u13FD\u1C90-\u1CBA\u1CBD-\u1CBF\u1D00-\u1D2B\u1D6B-\u1D77\u1D79-\u1D9A\u1E00-\u1F15\u1F18-\u1F1D\u1F20-\u1F45\u1F48-\u1F4D\u1F50-\u1F57\u1F59\u1F5B\u1F5D\u1F5F-\u1F7D\u1F80-\u1FB4\u1FB6-\u1FBC\u1FBE\u1FC2-\u1FC4\u1FC6-\u1FCC\u1FD0-\u1FD3\u1FD6-\u1FDB\u1FE0-\u1FEC\u1FF2-\u1FF4\u1FF6-\u1FFC\u2102\u2107\u210A-\u2113\u2115\u2119-\u211D\u2124\u2126\u2128\u212A-\u212D\u212F-\u2134\u2139\u213C-\u213F\u2145-\u2149\u214E\u2183\u2184\u2C00-\u2C7B\u2C7E-\u2CE4\u2CEB-\u2CEE\u2CF2\u2CF3\uA640-\uA66D\uA680-\uA69B\uA722-\uA76F\uA771-\uA787\uA78B-\uA78E\uAB70-\uABBF\uFB00-\uFB06\uFB13-\uFB17\uFF21-\uFF3A\uFF41-\uFF5A\u{10400}-\u{1044F}\u{104B0}-\u{104D3}\u{104D8}-\u{104FB}\u{10C80}-\u{10CB2}\u{10CC0}-\u{10CF2}\u{118A0}-\u{118DF}\u{1E900}-\u{1E943}]+",
    "\\s?[!-/:-~\uFF01-\uFF0F\uFF1A-\uFF5E\u2018-\u201F\u3000-\u3002]+",
    "\\s+$",
    "[\u4E00-\u9FA5\u0800-\u4E00\uAC00-\uD7FF]+",
    "\\p{N}+",
  ].map((src) => src.replaceAll("\\s", S)),
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
  bloom: "bloom", "poro-chat": "bloom", "gpt3-finnish": "bloom", viking: "viking",
  qwen35: "qwen35",
  "gpt-4o": "gpt-4o", llama4: "gpt-4o", kanana2: "gpt-4o", talkie: "gpt-4o", "minimax-m2": "gpt-4o",
  "deepseek-coder": "deepseek-coder",
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
  "f2llmv2", "tekken", "qwen35", "gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2", "smollm", "chameleon", "trillion", "granite-docling", "hunyuan", "grok-2",
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
