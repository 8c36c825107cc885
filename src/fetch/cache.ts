import { createHash, randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, readFile, rename, stat, unlink, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { Transform, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { ActiveflowError, diskFull } from "../errors.js";
import { syncFile } from "../tempFiles.js";

// The local model cache: $ACTIVEFLOW_CACHE or ~/.cache/activeflow, models in <cache>/models.
// Files land by atomic rename after their SHA-256 is checked, so a reader never sees a
// half-written model; a small sidecar remembers a verified hash by size+mtime so a second
// lookup does not re-hash ~100 MB.

export interface ExpectedFile {
  sha256: string; // lowercase hex
  size: number; // bytes
}

export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env.ACTIVEFLOW_CACHE;
  // Absolute, so the path `activeflow fetch` prints works from any directory.
  return fromEnv !== undefined && fromEnv !== "" ? resolve(fromEnv) : join(homedir(), ".cache", "activeflow");
}

export function modelsDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(cacheRoot(env), "models");
}

export function sidecarPath(file: string): string {
  return join(dirname(file), `.${basename(file)}.sha256.json`);
}

interface Sidecar {
  size: number;
  mtimeMs: number;
  sha256: string;
}

// Streams the file through SHA-256; onBytes reports progress.
export async function sha256File(path: string, onBytes?: (done: number) => void): Promise<string> {
  const hash = createHash("sha256");
  let done = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    hash.update(chunk as Buffer);
    done += (chunk as Buffer).length;
    onBytes?.(done);
  }
  return hash.digest("hex");
}

// True when `path` exists with the expected size and hash. The hash comes from the sidecar
// when size and mtime still match it; otherwise the file is hashed and the sidecar rewritten.
export async function isVerified(
  path: string,
  expected: ExpectedFile,
  onBytes?: (done: number) => void,
): Promise<boolean> {
  let st;
  try {
    st = await stat(path);
  } catch {
    return false;
  }
  if (!st.isFile() || st.size !== expected.size) return false;
  const side = await readSidecar(path);
  if (side !== undefined && side.size === st.size && side.mtimeMs === st.mtimeMs) {
    return side.sha256 === expected.sha256;
  }
  const sha256 = await sha256File(path, onBytes);
  await writeSidecar(path, { size: st.size, mtimeMs: st.mtimeMs, sha256 });
  return sha256 === expected.sha256;
}

async function readSidecar(path: string): Promise<Sidecar | undefined> {
  try {
    const j = JSON.parse(await readFile(sidecarPath(path), "utf8")) as Partial<Sidecar>;
    if (typeof j.size === "number" && typeof j.mtimeMs === "number" && typeof j.sha256 === "string") {
      return { size: j.size, mtimeMs: j.mtimeMs, sha256: j.sha256 };
    }
  } catch {
    // Missing or corrupt sidecar: just hash again.
  }
  return undefined;
}

// Temp file then rename: two fetches of one model write it at once, and a reader must never
// see half of it.
async function writeSidecar(path: string, s: Sidecar): Promise<void> {
  const side = sidecarPath(path);
  const tmp = `${side}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, JSON.stringify(s) + "\n");
    await rename(tmp, side);
  } catch {
    // A read-only cache still works; it just re-hashes next time.
    await unlink(tmp).catch(() => undefined);
  }
}

// Writes `source` to a temp file beside `dest`, hashing on the way, checks size and SHA-256,
// then renames into place (atomic on one filesystem). On any failure the temp file is removed
// and `dest` is untouched. `what` names the source in error messages.
export async function installVerified(
  dest: string,
  expected: ExpectedFile,
  source: Readable,
  what: string,
  onBytes?: (done: number) => void,
): Promise<void> {
  await mkdir(dirname(dest), { recursive: true });
  const tmp = join(dirname(dest), `.${basename(dest)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
  const hash = createHash("sha256");
  let size = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      size += chunk.length;
      onBytes?.(size);
      cb(null, chunk);
    },
  });
  try {
    await pipeline(source, tap, createWriteStream(tmp));
    const sha256 = hash.digest("hex");
    if (size !== expected.size || sha256 !== expected.sha256) {
      throw new ActiveflowError(
        "FETCH",
        `checksum mismatch for ${what}: got ${size} bytes with sha256 ${sha256}, expected ${expected.size} bytes with sha256 ${expected.sha256}`,
      );
    }
    await syncFile(tmp);
    await rename(tmp, dest);
    const st = await stat(dest);
    await writeSidecar(dest, { size: st.size, mtimeMs: st.mtimeMs, sha256 });
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw diskFull(e, dest);
  }
}
