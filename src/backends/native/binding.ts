// The only module that loads the .node file. Everything else imports `loadAddon()`.
import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ActiveflowError } from "../../errors.js";
import type { ColBindings } from "./colTypes.js";
import type { ColxBindings } from "./colxTypes.js";
import type { IoBindings } from "./ioTypes.js";
import type { KernelBindings } from "./kernelTypes.js";
import type { ModelBindings } from "./modelTypes.js";

export type NativeAddon = KernelBindings & ModelBindings & IoBindings & ColBindings & ColxBindings & {
  // The class every native error is built with (native/addon/bindings.h, ToJsError): called
  // once below with ActiveflowError, so addon calls need no per-call error conversion.
  setErrorClass(cls: new (code: string, message: string) => Error): void;
};

let cached: NativeAddon | undefined;

function findAddon(): string {
  // ACTIVEFLOW_ADDON: another build of the addon (the sanitizer build of `npm run test:asan`).
  const forced = process.env.ACTIVEFLOW_ADDON;
  if (forced !== undefined && forced !== "") {
    if (!existsSync(forced)) throw new ActiveflowError("NATIVE_NOT_BUILT", `ACTIVEFLOW_ADDON=${forced}: no such file`);
    return resolve(forced);
  }
  // dist/src/backends/native/binding.js and src/backends/native/binding.ts both sit 3-4
  // levels below the package root; walk up until build/Release is found.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, "build", "Release", "activeflow.node");
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  throw new ActiveflowError(
    "NATIVE_NOT_BUILT",
    "native addon build/Release/activeflow.node not found; run `npm run build:native` in a checkout, or `npm rebuild activeflow` where it is installed",
  );
}

export function loadAddon(): NativeAddon {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  let addon: NativeAddon;
  try {
    addon = require(findAddon()) as NativeAddon;
  } catch (e) {
    // A forced instruction set this CPU lacks (or a misspelt one) is the user's setting.
    if (e instanceof Error && e.message.includes("ACTIVEFLOW_ISA=")) throw new ActiveflowError("BAD_ARGUMENT", e.message, { cause: e });
    throw e;
  }
  // Native errors are ActiveflowErrors from here on: made at the source, with their code.
  addon.setErrorClass(ActiveflowError as new (code: string, message: string) => Error);
  cached = addon;
  return cached;
}
