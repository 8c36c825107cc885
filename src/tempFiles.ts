// Temporary files our writers create while they work, each named with the writing process's
// pid: <target>.tmp-<pid> (GgufWriter, the machine profile, calibration tables),
// <target>.partial-<pid> (convert), <file>.meta-<pid>.tmp (flash header updates),
// .<name>.<pid>.<8 hex>.tmp (fetch) and the directory .fetch-<pid>-<random> (fetch's download).
// A process ended by a signal or kill -9 cannot remove its own, so they are removed on exit
// where Node still runs exit handlers (trackTemp), and otherwise swept by the next command whose
// process finds the owner gone (sweepTemps).
import { unlinkSync } from "node:fs";
import { open, readdir, rm } from "node:fs/promises";
import { join } from "node:path";

const OWNER_PATTERNS: readonly RegExp[] = [
  /\.tmp-(\d+)$/,
  /\.partial-(\d+)$/,
  /\.meta-(\d+)\.tmp$/,
  /^\..+\.(\d+)\.[0-9a-f]{8}\.tmp$/,
  /^\.fetch-(\d+)-[^/]+$/,
];

// The pid in a temporary file's name, or undefined when the name is not one of ours.
export function tempOwner(name: string): number | undefined {
  for (const re of OWNER_PATTERNS) {
    const m = re.exec(name);
    if (m) return Number(m[1]);
  }
  return undefined;
}

// Whether process `pid` exists. EPERM means it exists under another user: alive. A pid reused
// by an unrelated process counts as alive too, which only delays the sweep.
export function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  if (!Number.isSafeInteger(pid) || pid <= 0) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

// Removes the temporary files in `dir` (names starting with `prefix`, if given) whose owner
// process is gone. Returns the removed paths; a missing directory has none.
export async function sweepTemps(dir: string, prefix = ""): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = tempOwner(name);
    if (pid === undefined || processAlive(pid)) continue;
    const path = join(dir, name);
    try {
      await rm(path, { recursive: true, force: true }); // fetch's download is a directory
      removed.push(path);
    } catch {
      // another sweeper got it first, or the directory is read-only: not ours to fail on
    }
  }
  return removed;
}

// Files this process is writing right now, removed synchronously if the process exits
// (process.exit after a second Ctrl-C, or the SIGTERM handler of the CLI) before its writer
// could clean up.
const live = new Set<string>();
let hooked = false;

function removeLive(): void {
  for (const path of live) {
    try {
      unlinkSync(path);
    } catch {
      // already renamed into place or removed
    }
  }
}

// Registers `path` until the returned function is called (after its rename or removal).
export function trackTemp(path: string): () => void {
  if (!hooked) {
    process.on("exit", removeLive);
    hooked = true;
  }
  live.add(path);
  return () => {
    live.delete(path);
  };
}

// Flushes a finished temporary file before its rename, so the rename never publishes half.
export async function syncFile(path: string): Promise<void> {
  const fh = await open(path, "r+");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

// Makes a rename in `dir` durable (best effort: some filesystems refuse fsync on a directory).
export async function syncDir(dir: string): Promise<void> {
  try {
    const d = await open(dir, "r");
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  } catch {
    // nothing more to do
  }
}
