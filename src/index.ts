// Public API.
export { Engine } from "./engine/Engine.js";
export type { ContextSizer, GenerateOptions, GeneratedToken, GenerationStats, LoadOptions, SamplingOptions } from "./engine/types.js";
export type { ChatMessage, Tokenizer } from "./tokenizer/types.js";
export { ActiveflowError, isActiveflowError, type ErrorCode } from "./errors.js";
export { readGguf } from "./gguf/reader.js";
export type { GgufFile, GgufTensorInfo } from "./gguf/types.js";
