// Converted models live in the cache, keyed by the source's name, size and mtime, so `run`
// on a GGUF converts once and reuses the result. Beside each entry a small sidecar
// (<entry>.json) records the source's full path, so `activeflow cache ls` can tell whether
// the source still exists and `cache prune` can remove conversions of changed or deleted
// sources; its mtime is the entry's last use.
import { mkdir, rename, stat, unlink, utimes, writeFile } from "node:fs/promises";
import { diskFull } from "../errors.js";
import { basename, join, resolve } from "node:path";
import { cacheRoot } from "../fetch/cache.js";
import type { ConversionKernels } from "../backend/Backend.js";
import { sweepTemps, trackTemp } from "../tempFiles.js";
import { convertToFlash, type ConvertOptions } from "./convert.js";
import { DEFAULT_GROUP_SIZE } from "./format.js";

export function flashCacheDir(): string {
  return join(cacheRoot(), "flash");
}

export async function flashCachePath(source: string, groupSize: number, columns = "auto2"): Promise<string> {
  const st = await stat(source);
  const name = basename(source).replace(/\.gguf$/i, "");
  return join(flashCacheDir(), `${name}-${st.size}-${Math.floor(st.mtimeMs)}.g${groupSize}.${columns}.af.gguf`);
}

// What the sidecar of a cache entry holds (snake_case: it is a file format).
export interface CacheSidecar {
  source_path: string;
  source_bytes: number;
  source_mtime_ms: number;
}

export const sidecarOf = (entry: string): string => `${entry}.json`;

async function writeSidecar(entry: string, source: string): Promise<void> {
  const st = await stat(source);
  const body: CacheSidecar = { source_path: resolve(source), source_bytes: st.size, source_mtime_ms: Math.floor(st.mtimeMs) };
  const path = sidecarOf(entry);
  const tmp = `${path}.tmp-${process.pid}`;
  const untrack = trackTemp(tmp);
  try {
    await writeFile(tmp, `${JSON.stringify(body)}\n`);
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw diskFull(e, path);
  } finally {
    untrack();
  }
}

// Marks the entry used now (the sidecar's mtime); a read-only cache just keeps the old time.
async function touch(entry: string, source: string): Promise<void> {
  const now = new Date();
  try {
    await utimes(sidecarOf(entry), now, now);
  } catch {
    // No sidecar (converted by an older version): write one, so ls can find the source.
    await writeSidecar(entry, source).catch(() => {});
  }
}

// Returns the converted file for `source`, converting it first (with the backend's
// kernels) if the cache lacks it.
export async function ensureConverted(
  kernels: ConversionKernels,
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
    await touch(target, source);
    return target;
  } catch {
    // not converted yet
  }
  await mkdir(flashCacheDir(), { recursive: true });
  // Leftovers of conversions whose process was killed (convertToFlash sweeps its own target's).
  await sweepTemps(flashCacheDir());
  options.log?.(`converting ${source} to the flash layout (once) -> ${target}`);
  await convertToFlash(kernels, source, target, { ...options, groupSize });
  await writeSidecar(target, source);
  return target;
}
