// Converted models live in the cache, keyed by the source's name, size and mtime, so `run`
// on a GGUF converts once and reuses the result.
import { mkdir, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import { cacheRoot } from "../fetch/cache.js";
import { convertToFlash, type ConvertOptions } from "./convert.js";
import { DEFAULT_GROUP_SIZE } from "./format.js";

export async function flashCachePath(source: string, groupSize: number, columns = "auto2"): Promise<string> {
  const st = await stat(source);
  const name = basename(source).replace(/\.gguf$/i, "");
  return join(cacheRoot(), "flash", `${name}-${st.size}-${Math.floor(st.mtimeMs)}.g${groupSize}.${columns}.af.gguf`);
}

// Returns the converted file for `source`, converting it first if the cache lacks it.
export async function ensureConverted(
  source: string,
  options: ConvertOptions & { log?: (line: string) => void } = {},
): Promise<string> {
  const groupSize = options.groupSize ?? DEFAULT_GROUP_SIZE;
  // "auto2": the default layout since split columns (format version 2); files cached as "auto"
  // hold requantised Q8_0 columns for 4-6 bit sources and are not reused as the default.
  const columns = options.columnType !== undefined ? `t${options.columnType}` : options.keepSourceType ? "src" : "auto2";
  const target = await flashCachePath(source, groupSize, columns);
  try {
    await stat(target);
    return target;
  } catch {
    // not converted yet
  }
  await mkdir(join(cacheRoot(), "flash"), { recursive: true });
  options.log?.(`converting ${source} to the flash layout (once) -> ${target}`);
  await convertToFlash(source, target, { ...options, groupSize });
  return target;
}
