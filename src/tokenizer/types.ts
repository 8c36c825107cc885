export interface ChatMessage {
  role: "system" | "user" | "assistant" | (string & {});
  content: string;
}

export interface EncodeOptions {
  // Prepend BOS when the model's metadata asks for it (tokenizer.ggml.add_bos_token).
  // Defaults to false (raw text).
  addSpecial?: boolean;
  // Recognise special/control token texts (e.g. "<|im_start|>") in the input.
  // Defaults to false, so user text cannot inject control tokens.
  parseSpecial?: boolean;
}

export interface Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  // Ids that end generation: eos, eot and any token the vocab marks as end-of-generation.
  readonly stopIds: ReadonlySet<number>;
  encode(text: string, options?: EncodeOptions): number[];
  // Decodes ids to text. Control tokens render as their text unless skipSpecial.
  decode(ids: readonly number[], options?: { skipSpecial?: boolean }): string;
  // Raw bytes of one token (byte-level BPE byte mapping or SentencePiece <0xNN> undone),
  // for streaming decoders that must hold back incomplete UTF-8 sequences.
  tokenBytes(id: number): Uint8Array;
  // True for control tokens (chat markers and the like), which streamed text leaves out.
  isControl(id: number): boolean;
  // Renders messages with the GGUF's tokenizer.chat_template; throws CHAT_TEMPLATE if the
  // model has none and no fallback applies.
  applyChatTemplate(messages: readonly ChatMessage[], options?: { addGenerationPrompt?: boolean }): string;
}
