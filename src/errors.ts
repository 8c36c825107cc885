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
  | "NO_BACKEND"
  | "FETCH"
  | "BAD_ARGUMENT"
  | "BAD_SCHEMA"
  | "ABORTED"
  | "CONTEXT_FULL"
  | "DISPOSED"
  | "FLASH_IO"
  | "FLASH_CHECKSUM"
  | "BUDGET_TOO_SMALL"
  | "DISTILL"
  | "DISK_FULL";

// Longest message an error carries: file-derived text (a key, a tensor name) can be anything.
const MAX_MESSAGE_CHARS = 600;

// One line, whatever the text quoted in it holds: control characters escaped, long text cut.
export function oneLine(message: string): string {
  // eslint-disable-next-line no-control-regex
  const flat = message.replace(/[\u0000-\u001f\u007f]/g, (c) => (c === "\n" ? "\\n" : c === "\t" ? "\\t" : `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`));
  return flat.length > MAX_MESSAGE_CHARS ? `${flat.slice(0, MAX_MESSAGE_CHARS)}...` : flat;
}

// Every error a user sees is one line (the CLI prints `error: <message>`).
export class ActiveflowError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(oneLine(message), options);
    this.name = "ActiveflowError";
    this.code = code;
  }
}

export function isActiveflowError(e: unknown): e is ActiveflowError {
  return e instanceof ActiveflowError;
}

// A full disk (ENOSPC) or exhausted quota (EDQUOT) while writing `path` becomes DISK_FULL naming
// it: Node's own message for a write to an open file names no file ("ENOSPC: no space left on
// device, write"). Any other error is returned as it is. Callers remove their partial file.
export function diskFull(e: unknown, path: string): unknown {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (code !== "ENOSPC" && code !== "EDQUOT") return e;
  const why = code === "ENOSPC" ? "the disk is full (ENOSPC, no space left on the device)" : "the disk quota is used up (EDQUOT)";
  return new ActiveflowError("DISK_FULL", `cannot write ${path}: ${why}; free some space and run again`, { cause: e });
}
