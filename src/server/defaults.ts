// The server's defaults and limits, one place for each (the CLI's --help quotes them).
export const DEFAULT_HOST = "127.0.0.1";
export const DEFAULT_PORT = 8080;
// Requests that may wait while one generates; beyond it the answer is 429.
export const DEFAULT_MAX_QUEUE = 16;
// Largest request body: a full 128k-token conversation is well under it.
export const BODY_LIMIT_BYTES = 1 << 20;
// On SIGTERM (or Ctrl-C): how long running and queued generations may take to finish before
// they are cancelled (a second signal cancels them at once).
export const DRAIN_SECONDS = 30;
// Environment variable read for the API key when --api-key is not given.
export const API_KEY_ENV = "ACTIVEFLOW_API_KEY";
