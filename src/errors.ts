// Typed errors with a stable `code`, so callers (and the CLI) can tell failures apart
// without parsing messages. Messages name the file, field or value and what was expected.
export type ErrorCode =
  | "ENOENT_MODEL"
  | "GGUF_EMPTY"
  | "GGUF_BAD_MAGIC"
  | "GGUF_BAD_VERSION"
  | "GGUF_TRUNCATED"
  | "GGUF_BAD_COUNT"
  | "GGUF_BAD_TENSOR"
  | "GGUF_UNKNOWN_TYPE"
  | "GGUF_BAD_VALUE"
  | "MODEL_UNSUPPORTED"
  | "MODEL_MISSING_TENSOR"
  | "MODEL_BAD_SHAPE"
  | "TOKENIZER"
  | "CHAT_TEMPLATE"
  | "NATIVE"
  | "NATIVE_NOT_BUILT"
  | "FETCH"
  | "BAD_ARGUMENT"
  | "ABORTED"
  | "CONTEXT_FULL"
  | "DISPOSED"
  | "FLASH_IO"
  | "FLASH_CHECKSUM"
  | "BUDGET_TOO_SMALL"
  | "DISTILL";

export class ActiveflowError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ActiveflowError";
    this.code = code;
  }
}

export function isActiveflowError(e: unknown): e is ActiveflowError {
  return e instanceof ActiveflowError;
}
