// Public API.
export { Engine } from "./engine/Engine.js";
// The platform entry: loading the factory makes the native addon Engine.load's default
// backend (the core itself names no backend; src/backend/registry.ts).
export { defaultBackend } from "./backends/default.js";
export type { Backend } from "./backend/Backend.js";
export type { ContextSizer, GenerateOptions, GeneratedToken, GenerationStats, LoadOptions, SamplingOptions } from "./engine/types.js";
export type { ChatMessage, Tokenizer } from "./tokenizer/types.js";
export { compileJsonSchema, JSON_OBJECT_SCHEMA, type JsonSchema } from "./structured/schema.js";
export { ActiveflowError, isActiveflowError, type ErrorCode } from "./errors.js";
export { readGguf } from "./gguf/reader.js";
export type { GgufFile, GgufTensorInfo } from "./gguf/types.js";
