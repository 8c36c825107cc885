// Files for our flash reader's bandwidth benchmarks (bench/io, bench/pipeline); the
// measurement itself lives in src/pipeline/readBandwidth.ts, shared with the engine's profile.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, renameSync, statSync, writeSync } from "node:fs";
import { randomFillSync } from "node:crypto";
import { join } from "node:path";

export { measureReader, type ReaderPoint } from "../../src/pipeline/readBandwidth.js";

// Random bytes (not zeros) so no layer below can compress or skip them. Written once.
export function ensureRandomFile(path: string, bytes: number, log: (s: string) => void): void {
  if (existsSync(path) && statSync(path).size === bytes) return;
  log(`writing ${bytes / 2 ** 30} GiB of random bytes to ${path} (once)`);
  mkdirSync(join(path, ".."), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, "w");
  const chunk = Buffer.allocUnsafe(64 << 20);
  for (let done = 0; done < bytes; done += chunk.length) {
    randomFillSync(chunk);
    writeSync(fd, chunk, 0, Math.min(chunk.length, bytes - done));
  }
  fsyncSync(fd);
  closeSync(fd);
  renameSync(tmp, path);
}
