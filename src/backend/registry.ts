// The backend Engine.load uses when its caller passes none. The core names no backend
// implementation: a platform entry point sets the default (src/backends/default.ts, imported
// by src/index.ts and the CLI), as onnxruntime-node registers its backend with
// onnxruntime-common.
import { ActiveflowError } from "../errors.js";
import type { Backend } from "./Backend.js";

let factory: (() => Backend) | undefined;

export function setDefaultBackend(make: () => Backend): void {
  factory = make;
}

export function registeredBackend(): Backend {
  if (!factory) {
    throw new ActiveflowError(
      "NO_BACKEND",
      "no default backend is set: import Engine from the package entry (`activeflow`, src/index.ts), which sets the native one, or pass a backend to Engine.load",
    );
  }
  return factory();
}
