// A real memory limit for one benchmark child: a cgroup (v1 memory controller, or v2 with
// the memory controller enabled) under which the child execs itself, so its anonymous memory
// and the page cache it pulls in are both charged and capped (DESIGN.md, "Memory: what the
// budget means"). Needs root; callers say so plainly when it is not available.
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync, accessSync, constants } from "node:fs";
import { join } from "node:path";

export interface CgroupKind {
  version: 1 | 2;
  // Directory new groups are created in.
  base: string;
}

export interface CgroupReading {
  // Highest charged bytes while the child ran (v1 memory.max_usage_in_bytes, v2 memory.peak).
  peakBytes: number | undefined;
  // Times the limit was hit (v1 memory.failcnt, v2 memory.events "max").
  failcnt: number | undefined;
  // OOM kills inside the group (v1 memory.oom_control oom_kill, v2 memory.events oom_kill).
  oomKills: number | undefined;
  underOom: boolean | undefined;
  // Highest anonymous and page-cache bytes seen by sampling memory.stat while the child ran
  // (v1 rss / cache, v2 anon / file): which of the two filled the limit.
  sampledAnonBytesMax?: number;
  sampledFileBytesMax?: number;
}

const V1 = "/sys/fs/cgroup/memory";

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

function writable(path: string): boolean {
  try {
    accessSync(path, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

function keyed(text: string | undefined, key: string): number | undefined {
  const m = text === undefined ? null : new RegExp(`^${key} (\\d+)$`, "m").exec(text);
  return m ? Number(m[1]) : undefined;
}

// The usable cgroup hierarchy, or the reason there is none.
export function findCgroup(): CgroupKind | string {
  if (process.getuid?.() !== 0) return "the budget benchmark needs root to create a memory cgroup (it is running as uid " + process.getuid?.() + ")";
  if (existsSync(join(V1, "memory.limit_in_bytes"))) {
    if (!writable(V1)) return `${V1} is mounted but not writable`;
    return { version: 1, base: V1 };
  }
  for (const root of ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]) {
    const controllers = readText(join(root, "cgroup.controllers"));
    if (controllers?.split(/\s+/).includes("memory")) {
      if (!writable(root)) return `${root} (cgroup v2) is not writable`;
      return { version: 2, base: root };
    }
  }
  return `no cgroup memory controller: neither ${V1} (v1) nor a cgroup v2 mount with the memory controller`;
}

export class MemoryCgroup {
  private constructor(
    readonly kind: CgroupKind,
    readonly dir: string,
  ) {}

  // Creates `name` under the hierarchy's base with `limitBytes` (undefined: no limit, only
  // the peak is measured).
  static create(kind: CgroupKind, parent: string, name: string, limitBytes: number | undefined): MemoryCgroup {
    const parentDir = join(kind.base, parent);
    mkdirSync(parentDir, { recursive: true });
    if (kind.version === 2) {
      // Children of `parent` get the memory controller only if the parent delegates it.
      try {
        writeFileSync(join(kind.base, "cgroup.subtree_control"), "+memory");
      } catch {
        // already enabled, or the kernel refuses (then memory.max below fails loudly)
      }
      writeFileSync(join(parentDir, "cgroup.subtree_control"), "+memory");
    }
    const dir = join(parentDir, name);
    mkdirSync(dir);
    const g = new MemoryCgroup(kind, dir);
    if (limitBytes !== undefined) {
      const limit = String(Math.floor(limitBytes));
      if (kind.version === 1) {
        writeFileSync(join(dir, "memory.limit_in_bytes"), limit);
        // Without swap accounting memsw is absent; with it, swap must not extend the limit.
        if (existsSync(join(dir, "memory.memsw.limit_in_bytes"))) writeFileSync(join(dir, "memory.memsw.limit_in_bytes"), limit);
      } else {
        writeFileSync(join(dir, "memory.max"), limit);
        if (existsSync(join(dir, "memory.swap.max"))) writeFileSync(join(dir, "memory.swap.max"), "0");
      }
    }
    return g;
  }

  // The file a child writes its own pid to (`echo $$ > procs && exec ...`).
  get procsFile(): string {
    return join(this.dir, "cgroup.procs");
  }

  // Current anonymous and page-cache bytes (memory.stat), for sampling during a run.
  sample(): { anon: number; file: number } | undefined {
    const stat = readText(join(this.dir, "memory.stat"));
    const anon = keyed(stat, this.kind.version === 1 ? "rss" : "anon");
    const file = keyed(stat, this.kind.version === 1 ? "cache" : "file");
    return anon === undefined || file === undefined ? undefined : { anon, file };
  }

  read(): CgroupReading {
    if (this.kind.version === 1) {
      const num = (f: string) => {
        const t = readText(join(this.dir, f));
        return t === undefined ? undefined : Number(t.trim());
      };
      const oom = readText(join(this.dir, "memory.oom_control"));
      const under = keyed(oom, "under_oom");
      return { peakBytes: num("memory.max_usage_in_bytes"), failcnt: num("memory.failcnt"), oomKills: keyed(oom, "oom_kill"), underOom: under === undefined ? undefined : under !== 0 };
    }
    const peak = readText(join(this.dir, "memory.peak"));
    const events = readText(join(this.dir, "memory.events"));
    return { peakBytes: peak === undefined ? undefined : Number(peak.trim()), failcnt: keyed(events, "max"), oomKills: keyed(events, "oom_kill"), underOom: undefined };
  }

  // Removes the group; it must be empty (the child has exited). Retries briefly because the
  // kernel may still be tearing the exited task down.
  async remove(): Promise<void> {
    for (let i = 0; i < 50; i++) {
      try {
        rmdirSync(this.dir);
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    rmdirSync(this.dir);
  }
}

export function removeParent(kind: CgroupKind, parent: string): void {
  try {
    rmdirSync(join(kind.base, parent));
  } catch {
    // already gone, or a child still in it (reported by the caller's own removal)
  }
}

// Drops the page cache so every run starts cold and no earlier run's cache is charged here.
export function dropCaches(): string | undefined {
  try {
    writeFileSync("/proc/sys/vm/drop_caches", "3");
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}
