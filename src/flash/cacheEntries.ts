// The conversion cache as `activeflow cache ls|rm|prune` sees it: each converted file, the
// source it came from (from its sidecar, see cache.ts), whether it is stale, and the
// temporary files of conversions in progress or left by killed processes.
import { readdir, readFile, rm, stat } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { ActiveflowError } from "../errors.js";
import { processAlive, tempOwner } from "../tempFiles.js";
import { flashCacheDir, sidecarOf, type CacheSidecar } from "./cache.js";

// current: the source exists unchanged; source_missing / source_changed: the source is gone or
// differs from what was converted; superseded: a newer conversion of the same source with the
// same options exists, or the default layout of the same source replaced this older one; unknown: converted by an older version without a sidecar, and no newer
// copy exists, so whether its source still exists cannot be told (never pruned).
export type EntryStatus = "current" | "source_missing" | "source_changed" | "superseded" | "unknown";
const STALE: ReadonlySet<EntryStatus> = new Set(["source_missing", "source_changed", "superseded"]);

export interface CacheEntry {
  path: string;
  name: string;
  bytes: number;
  // The source's stem, size and mtime as the entry's name keys them, and the options.
  sourceStem: string;
  sourceBytes: number;
  sourceMtimeMs: number;
  groupSize: number;
  columns: string;
  sourcePath: string | null;
  sourceExists: boolean | null;
  status: EntryStatus;
  stale: boolean;
  // When the conversion was written, and when it was last converted or reused (null: converted
  // by an older version that kept no sidecar, and not reused since).
  convertedMs: number;
  lastUsedMs: number | null;
}

export interface CacheTemp {
  path: string;
  bytes: number;
  pid: number;
  // Its writer is running (a conversion in progress); else the next command sweeps it.
  ownerAlive: boolean;
}

export interface CacheListing {
  dir: string;
  entries: CacheEntry[];
  temps: CacheTemp[];
}

// <stem>-<size>-<mtime>.g<group>.<columns>.af.gguf (flashCachePath).
const ENTRY_RE = /^(.+)-(\d+)-(\d+)\.g(\d+)\.([A-Za-z0-9]+)\.af\.gguf$/;

async function readSidecar(entry: string): Promise<{ sidecar: CacheSidecar; mtimeMs: number } | undefined> {
  try {
    const sidecar = JSON.parse(await readFile(sidecarOf(entry), "utf8")) as CacheSidecar;
    if (typeof sidecar.source_path !== "string") return undefined;
    return { sidecar, mtimeMs: (await stat(sidecarOf(entry))).mtimeMs };
  } catch {
    return undefined;
  }
}

export async function listCache(dir = flashCacheDir()): Promise<CacheListing> {
  let names: string[];
  try {
    names = (await readdir(dir)).sort();
  } catch {
    return { dir, entries: [], temps: [] };
  }
  const entries: CacheEntry[] = [];
  const temps: CacheTemp[] = [];
  for (const name of names) {
    const path = join(dir, name);
    const pid = tempOwner(name);
    if (pid !== undefined) {
      const st = await stat(path).catch(() => undefined);
      if (st) temps.push({ path, bytes: st.size, pid, ownerAlive: processAlive(pid) });
      continue;
    }
    const m = ENTRY_RE.exec(name);
    if (!m) continue;
    const st = await stat(path).catch(() => undefined);
    if (!st?.isFile()) continue;
    const side = await readSidecar(path);
    let sourceExists: boolean | null = null;
    let status: EntryStatus = "unknown";
    const sourceBytes = Number(m[2]), sourceMtimeMs = Number(m[3]);
    if (side) {
      const src = await stat(side.sidecar.source_path).catch(() => undefined);
      sourceExists = src !== undefined;
      status = !src ? "source_missing"
        : src.size !== sourceBytes || Math.floor(src.mtimeMs) !== sourceMtimeMs ? "source_changed" : "current";
    }
    entries.push({
      path, name, bytes: st.size, sourceStem: m[1]!, sourceBytes, sourceMtimeMs, groupSize: Number(m[4]), columns: m[5]!,
      sourcePath: side?.sidecar.source_path ?? null, sourceExists, status, stale: false,
      convertedMs: st.mtimeMs, lastUsedMs: side?.mtimeMs ?? null,
    });
  }
  // An entry without a sidecar shares its source with any entry keyed by the same name, size
  // and mtime that has one.
  const key = (e: CacheEntry): string => `${e.sourceStem}-${e.sourceBytes}-${e.sourceMtimeMs}`;
  const known = new Map(entries.filter((e) => e.sourcePath !== null).map((e) => [key(e), e]));
  for (const e of entries) {
    const k = e.sourcePath === null ? known.get(key(e)) : undefined;
    if (k) Object.assign(e, { sourcePath: k.sourcePath, sourceExists: k.sourceExists, status: k.status });
  }
  // Older duplicates: the "auto" layout (requantised columns, before split columns) of a source
  // that also has the default "auto2" one, which is what run --dram reuses.
  for (const e of entries) {
    if (e.columns === "auto" && entries.some((o) => o.columns === "auto2" && o.groupSize === e.groupSize && key(o) === key(e))) e.status = "superseded";
  }
  // Without a sidecar: another entry of a source with the same stem, converted with the same
  // options from a newer version of the file. (Entries with a sidecar already say
  // source_changed when their source has moved on.)
  const identity = (e: CacheEntry): string => `${e.sourceStem}\0${e.groupSize}\0${e.columns}`;
  const newest = new Map<string, number>();
  for (const e of entries) newest.set(identity(e), Math.max(newest.get(identity(e)) ?? 0, e.sourceMtimeMs));
  for (const e of entries) {
    if (e.status === "unknown" && e.sourceMtimeMs < newest.get(identity(e))!) e.status = "superseded";
    e.stale = STALE.has(e.status);
  }
  return { dir, entries, temps };
}

async function removeEntry(e: CacheEntry): Promise<void> {
  await rm(e.path, { force: true });
  await rm(sidecarOf(e.path), { force: true });
}

// Removes the stale entries (and the sidecars of entries already gone). Returns what went.
export async function pruneCache(dir = flashCacheDir()): Promise<CacheEntry[]> {
  const { entries } = await listCache(dir);
  const stale = entries.filter((e) => e.stale);
  for (const e of stale) await removeEntry(e);
  await removeOrphanSidecars(dir);
  return stale;
}

async function removeOrphanSidecars(dir: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const present = new Set(names);
  for (const n of names) {
    if (n.endsWith(".af.gguf.json") && !present.has(n.slice(0, -".json".length))) await rm(join(dir, n), { force: true });
  }
}

// Removes the entries `target` names: an entry (its file name or path in the cache), or a
// source model (every conversion recorded from that path, or keyed by its current name, size
// and mtime). Throws BAD_ARGUMENT when nothing matches.
export async function removeFromCache(target: string, dir = flashCacheDir()): Promise<CacheEntry[]> {
  const { entries } = await listCache(dir);
  const full = resolve(target);
  let matched = entries.filter((e) => e.name === target || e.path === full);
  if (matched.length === 0) {
    const st = await stat(full).catch(() => undefined);
    const key = st ? `${basename(full).replace(/\.gguf$/i, "")}-${st.size}-${Math.floor(st.mtimeMs)}` : undefined;
    matched = entries.filter((e) => e.sourcePath === full || (key !== undefined && `${e.sourceStem}-${e.sourceBytes}-${e.sourceMtimeMs}` === key));
  }
  if (matched.length === 0) {
    throw new ActiveflowError("BAD_ARGUMENT", `no cache entry matches ${target} (neither an entry in ${dir} nor a source of one); \`activeflow cache ls\` lists them`);
  }
  for (const e of matched) await removeEntry(e);
  return matched;
}
