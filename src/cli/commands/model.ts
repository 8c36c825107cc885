// Turns the <model> argument into a file path (or fetches SmolLM2), and loads the engine.
import { statSync } from "node:fs";
import { resolve } from "node:path";
import { ActiveflowError } from "../../errors.js";
import type { LoadOptions } from "../../engine/types.js";
import type { OptionValues } from "../args.js";
import type { CliContext, EngineLike } from "./context.js";
import { fetchSmolLM2WithProgress } from "./fetch.js";

export const SMOLLM2_ALIAS = "smollm2";

export async function resolveModelPath(arg: string, ctx: CliContext): Promise<string> {
  const path = resolve(arg);
  let st;
  try {
    st = statSync(path);
  } catch {
    if (arg === SMOLLM2_ALIAS) return fetchSmolLM2WithProgress(ctx);
    throw new ActiveflowError("ENOENT_MODEL", `model file not found: ${path}`);
  }
  if (!st.isFile()) throw new ActiveflowError("ENOENT_MODEL", `model path is not a file: ${path} (expected a .gguf file)`);
  return path;
}

export function loadOptions(values: OptionValues): LoadOptions {
  const o: LoadOptions = {};
  if (values.threads !== undefined) o.threads = values.threads;
  if (values.ctx !== undefined) o.contextLength = values.ctx;
  return o;
}

// The real engine is imported lazily: --help, argument errors and fetch never load the addon.
export async function loadRealEngine(path: string, options: LoadOptions): Promise<EngineLike> {
  const { Engine } = await import("../../engine/Engine.js");
  return Engine.load(path, options);
}
