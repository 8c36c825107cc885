// Changing a running benchmark cgroup: lower or raise its memory limit while the child runs
// (the adaptive-budget demos), reset and read its peak, read its usage and limit-hit count.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { MemoryCgroup } from "./budgetCgroup.js";

function num(path: string): number | undefined {
  try {
    const t = readFileSync(path, "utf8").trim();
    return t === "max" ? Infinity : Number(t);
  } catch {
    return undefined;
  }
}

// Sets the limit. Lowering below the current usage makes the kernel reclaim first; when it
// cannot (v1 answers EBUSY) this retries for up to `waitMs`, then reports the failure.
export async function setLimit(g: MemoryCgroup, bytes: number, waitMs = 3000): Promise<{ ok: boolean; tries: number; error?: string }> {
  const limit = String(Math.floor(bytes));
  const v1 = g.kind.version === 1;
  const file = join(g.dir, v1 ? "memory.limit_in_bytes" : "memory.max");
  const memsw = join(g.dir, "memory.memsw.limit_in_bytes");
  const hasMemsw = v1 && existsSync(memsw);
  const t0 = performance.now();
  let error = "";
  for (let tries = 1; ; tries++) {
    try {
      // v1 keeps memsw >= limit: raise memsw first, lower it last.
      const raising = (num(file) ?? 0) < bytes;
      if (hasMemsw && raising) writeFileSync(memsw, limit);
      writeFileSync(file, limit);
      if (hasMemsw && !raising) writeFileSync(memsw, limit);
      return { ok: true, tries };
    } catch (e) {
      error = (e as Error).message;
      if (performance.now() - t0 > waitMs) return { ok: false, tries, error };
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

export function limitOf(g: MemoryCgroup): number | undefined {
  return num(join(g.dir, g.kind.version === 1 ? "memory.limit_in_bytes" : "memory.max"));
}

export function usageOf(g: MemoryCgroup): number | undefined {
  return num(join(g.dir, g.kind.version === 1 ? "memory.usage_in_bytes" : "memory.current"));
}

// v1: max_usage_in_bytes restarts from the current usage; v2 (kernel 6.12+): memory.peak too.
export function resetPeak(g: MemoryCgroup): boolean {
  try {
    writeFileSync(join(g.dir, g.kind.version === 1 ? "memory.max_usage_in_bytes" : "memory.peak"), "0");
    return true;
  } catch {
    return false;
  }
}

export function peakOf(g: MemoryCgroup): number | undefined {
  return num(join(g.dir, g.kind.version === 1 ? "memory.max_usage_in_bytes" : "memory.peak"));
}

// Times the limit was hit (v1 memory.failcnt, v2 memory.events "max").
export function limitHits(g: MemoryCgroup): number | undefined {
  if (g.kind.version === 1) return num(join(g.dir, "memory.failcnt"));
  try {
    const m = /^max (\d+)$/m.exec(readFileSync(join(g.dir, "memory.events"), "utf8"));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

// Spawn arguments that put the child in `g` before it execs (its first page is charged there).
export function inGroup(g: MemoryCgroup, argv: string[], nice = 10): [string, string[]] {
  return ["sh", ["-c", 'echo $$ > "$0" && n="$1" && shift && exec nice -n "$n" "$@"', g.procsFile, String(nice), ...argv]];
}
