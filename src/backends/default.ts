// The default backend: the native addon. The one module outside backends/native that names
// it (test/import-graph.test.ts holds everything else to that). Platform entry points take
// their backend from here (src/index.ts, the CLI), and importing it sets Engine.load's
// default, so engine/ never imports an implementation.
import type { Backend } from "../backend/Backend.js";
import { setDefaultBackend } from "../backend/registry.js";
import { NativeBackend } from "./native/NativeBackend.js";

let native: Backend | undefined;

// One instance per process; the addon itself loads on first use, not here.
export function defaultBackend(): Backend {
  return (native ??= new NativeBackend());
}

setDefaultBackend(defaultBackend);
