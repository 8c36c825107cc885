// Errors as the OpenAI API shapes them ({ error: { message, type, param, code } }), so clients
// written for it (the openai package, LangChain) raise their usual error classes.
import { isActiveflowError } from "../errors.js";

export type ApiErrorType = "invalid_request_error" | "authentication_error" | "not_found_error" | "rate_limit_error" | "server_error" | "unavailable_error";

export interface ApiErrorBody {
  error: { message: string; type: ApiErrorType; param: string | null; code: string | null };
}

// An error a route throws to answer with this status and body.
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: ApiErrorType,
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = "ApiError";
  }

  body(): ApiErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const badRequest = (message: string, param: string | null = null, code: string | null = null) =>
  new ApiError(400, message, "invalid_request_error", param, code);

// The type OpenAI uses for each status we answer with.
function typeFor(status: number): ApiErrorType {
  if (status === 401) return "authentication_error";
  if (status === 404) return "not_found_error";
  if (status === 429) return "rate_limit_error";
  if (status === 503) return "unavailable_error";
  return status >= 500 ? "server_error" : "invalid_request_error";
}

// Any error thrown while answering a request, as an ApiError: ours as they are; fastify's own
// (validation 400, body too large 413, bad JSON 400, wrong media type 415) with their status;
// the engine's by code (a bad request or schema, or a prompt larger than the context, is the client's;
// anything else, e.g. a model without a chat template, is the server's); the rest 500.
export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (isActiveflowError(e)) {
    if (e.code === "BAD_ARGUMENT" || e.code === "BUDGET_TOO_SMALL" || e.code === "BAD_SCHEMA") return badRequest(e.message, null, e.code.toLowerCase());
    if (e.code === "CONTEXT_FULL") return badRequest(e.message, "messages", "context_length_exceeded");
    return new ApiError(500, e.message, "server_error", null, e.code.toLowerCase());
  }
  const f = e as { statusCode?: unknown; code?: unknown; message?: unknown; validation?: AjvError[]; validationContext?: string } | undefined;
  if (typeof f?.statusCode === "number" && f.statusCode >= 400 && f.statusCode < 500) {
    // A schema failure: the first error names the field (the others repeat it per anyOf branch).
    const v = f.validation?.[0];
    if (v) {
      const path = v.instancePath.replace(/^\//, "").replace(/\//g, ".");
      const missing = typeof v.params?.missingProperty === "string" ? v.params.missingProperty : undefined;
      const param = missing !== undefined ? (path === "" ? missing : `${path}.${missing}`) : path === "" ? null : path;
      return badRequest(`${f.validationContext ?? "body"}${v.instancePath} ${v.message ?? "is invalid"}`, param, "invalid_body");
    }
    return new ApiError(f.statusCode, String(f.message), typeFor(f.statusCode), null, typeof f.code === "string" ? f.code : null);
  }
  return new ApiError(500, e instanceof Error ? e.message : String(e), "server_error");
}

interface AjvError {
  instancePath: string;
  message?: string;
  params?: Record<string, unknown>;
}

export function statusError(status: number, message: string, code: string | null = null): ApiError {
  return new ApiError(status, message, typeFor(status), null, code);
}
