// `activeflow cache ls|rm|prune`: the conversions `run --dram` keeps in <cache>/flash, with
// their sizes, sources and staleness; and the sweep of dead processes' temporary files that
// every command using the cache runs first.
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { cacheRoot } from "../../fetch/cache.js";
import type { CacheEntry, CacheTemp } from "../../flash/cacheEntries.js";
import { fmt } from "../../memory/budget.js";
import { sweepTemps } from "../../tempFiles.js";
import type { OptionValues } from "../args.js";
import { jsonText } from "../output.js";
import type { CliContext } from "./context.js";
import { formatTable } from "./table.js";

// Removes temporary files of dead processes from the cache root and its directories (flash,
// models, ...). Not recursive: our writers put temporary files beside their targets.
export async function sweepCache(env: NodeJS.ProcessEnv): Promise<string[]> {
  const root = cacheRoot(env);
  const removed = await sweepTemps(root);
  const subdirs = await readdir(root, { withFileTypes: true }).catch(() => []);
  for (const d of subdirs) if (d.isDirectory()) removed.push(...(await sweepTemps(join(root, d.name))));
  return removed;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

function entryRecord(e: CacheEntry): Record<string, unknown> {
  return {
    name: e.name, path: e.path, bytes: e.bytes, source_path: e.sourcePath, source_exists: e.sourceExists,
    source_bytes: e.sourceBytes, source_mtime: iso(e.sourceMtimeMs), group_size: e.groupSize, columns: e.columns,
    status: e.status, stale: e.stale, converted: iso(e.convertedMs), last_used: iso(e.lastUsedMs),
  };
}

function tempRecord(t: CacheTemp): Record<string, unknown> {
  return { path: t.path, bytes: t.bytes, pid: t.pid, owner_alive: t.ownerAlive };
}

// "3 h ago", "2 d ago": enough to see what has not been used for a while.
function ago(ms: number | null): string {
  if (ms === null) return "unknown";
  const s = Math.max(0, (Date.now() - ms) / 1000);
  if (s < 90) return `${Math.round(s)} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 129600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

const STATUS_TEXT: Record<CacheEntry["status"], string> = {
  current: "current",
  source_missing: "stale: source gone",
  source_changed: "stale: source changed",
  superseded: "stale: newer copy",
  unknown: "source unknown",
};

export async function cacheCommand(ctx: CliContext, action: string, target: string | undefined, values: OptionValues): Promise<number> {
  const { listCache, pruneCache, removeFromCache } = await import("../../flash/cacheEntries.js");
  const json = values.json === true;
  if (action === "ls") {
    const { dir, entries, temps } = await listCache();
    const total = entries.reduce((n, e) => n + e.bytes, 0) + temps.reduce((n, t) => n + t.bytes, 0);
    if (json) {
      ctx.stdout.write(`${jsonText({ dir, entries: entries.map(entryRecord), temp_files: temps.map(tempRecord), total_bytes: total })}\n`);
      return 0;
    }
    if (entries.length === 0 && temps.length === 0) {
      ctx.stdout.write(`no converted models in ${dir}\n`);
      return 0;
    }
    const rows = entries.map((e) => [e.name, fmt(e.bytes), STATUS_TEXT[e.status], ago(e.lastUsedMs), e.sourcePath ?? `${e.sourceStem}.gguf (path not recorded)`]);
    for (const t of temps) rows.push([t.path.slice(dir.length + 1), fmt(t.bytes), t.ownerAlive ? `converting (pid ${t.pid})` : `left by dead pid ${t.pid}`, "-", "-"]);
    ctx.stdout.write(formatTable(["entry", "size", "status", "last used", "source"], rows));
    const stale = entries.filter((e) => e.stale);
    ctx.stdout.write(`${entries.length} entries, ${fmt(total)} in ${dir}`);
    ctx.stdout.write(stale.length > 0 ? `; ${stale.length} stale (${fmt(stale.reduce((n, e) => n + e.bytes, 0))}): \`activeflow cache prune\` removes them\n` : "\n");
    return 0;
  }
  const removed = action === "prune" ? await pruneCache() : await removeFromCache(target!);
  const freed = removed.reduce((n, e) => n + e.bytes, 0);
  if (json) {
    ctx.stdout.write(`${jsonText({ removed: removed.map(entryRecord), freed_bytes: freed })}\n`);
    return 0;
  }
  for (const e of removed) ctx.stdout.write(`removed ${e.path} (${fmt(e.bytes)}${e.stale ? `, ${STATUS_TEXT[e.status]}` : ""})\n`);
  ctx.stdout.write(`${removed.length === 0 ? "nothing stale; " : ""}freed ${fmt(freed)}\n`);
  return 0;
}
