// This machine's speeds as the read planner and the tuner's cost model need them: the device's
// random-read bandwidth by read size (direct I/O on the model's file system, at the reader's
// queue depth, every completion replaced by a new read as fio does) and the column kernels'
// throughput (weight bytes per second). Measured once in about three seconds and cached per
// machine, device and I/O throttle in <cache>/machine-profile.json.
import { randomBytes } from "node:crypto";
import { readFile, rename, stat, unlink, writeFile, mkdir } from "node:fs/promises";
import { cpus } from "node:os";
import { join } from "node:path";
import type { DeviceProbe } from "../backend/Backend.js";
import { cacheRoot } from "../fetch/cache.js";
import { GgmlType } from "../gguf/types.js";

export interface MachineProfile {
  key: string;
  measuredAt: string;
  // Bytes per second of random reads of each size at the reader's queue depth (fewer for the
  // largest sizes, so the probe's buffers stay small), ascending sizes.
  readBandwidth: { bytes: number; bytesPerSecond: number; queueDepth: number }[];
  // Q4_0 column bytes the gather-axpy kernel consumes per second on one thread.
  columnBytesPerSecond: number;
}

export const PROFILE_READ_SIZES = [4096, 8192, 16384, 32768, 65536, 262144, 1048576];
// The probe's buffers (queue depth x read size) stay below this: it runs before the model is
// loaded, inside the user's memory.
const PROFILE_BUFFER_BYTES = 8 << 20;
// Bumped when the measurement changes, so cached profiles of an older kind are measured again.
const PROFILE_VERSION = 3;

// The read planner's cost curve: device seconds per read of each measured size.
export function readCostOf(p: MachineProfile): { bytes: number[]; seconds: number[] } {
  return { bytes: p.readBandwidth.map((r) => r.bytes), seconds: p.readBandwidth.map((r) => r.bytes / r.bytesPerSecond) };
}

// Interpolates log-linearly in read size; clamps outside the measured range.
export function bandwidthAt(p: MachineProfile, bytes: number): number {
  const t = p.readBandwidth;
  if (bytes <= t[0]!.bytes) return t[0]!.bytesPerSecond;
  for (let i = 1; i < t.length; i++) {
    if (bytes <= t[i]!.bytes) {
      const f = Math.log(bytes / t[i - 1]!.bytes) / Math.log(t[i]!.bytes / t[i - 1]!.bytes);
      return t[i - 1]!.bytesPerSecond * (t[i]!.bytesPerSecond / t[i - 1]!.bytesPerSecond) ** f;
    }
  }
  return t.at(-1)!.bytesPerSecond;
}

// A cgroup v1 blkio throttle (as flash-emu sets) changes what the device gives this process.
async function blkioThrottle(): Promise<string> {
  try {
    const line = (await readFile("/proc/self/cgroup", "utf8")).split("\n").find((l) => /:blkio:/.test(l));
    const dir = line?.split(":")[2];
    if (!dir || dir === "/") return "";
    const read = async (f: string) => (await readFile(join("/sys/fs/cgroup/blkio", dir, f), "utf8").catch(() => "")).trim().replace(/\s+/g, " ");
    const t = `${await read("blkio.throttle.read_bps_device")}/${await read("blkio.throttle.read_iops_device")}`;
    return t === "/" ? "" : `|throttle ${t}`;
  } catch {
    return "";
  }
}

async function profileKey(file: string): Promise<string> {
  const st = await stat(file);
  return `v${PROFILE_VERSION}|${cpus()[0]?.model ?? "cpu"}|${cpus().length}|dev${st.dev}${await blkioThrottle()}`;
}

// Random aligned reads of the model file itself (its device is what we will read), at the
// reader's queue depth, with the engine's I/O backend.
async function measureReads(probe: DeviceProbe, file: string, seconds: number): Promise<MachineProfile["readBandwidth"]> {
  const size = (await stat(file)).size;
  const { queueDepth } = probe.ioDefaults();
  const sizes = PROFILE_READ_SIZES.filter((bytes) => bytes * 4 <= size);
  const out: MachineProfile["readBandwidth"] = [];
  for (const bytes of sizes) {
    const qd = Math.max(1, Math.min(queueDepth, Math.floor(PROFILE_BUFFER_BYTES / bytes)));
    const each = seconds / sizes.length;
    const p = await probe.probeDevice(file, { blockBytes: bytes, queueDepth: qd, seconds: each * 0.75, warmupSeconds: each * 0.25 });
    out.push({ bytes, bytesPerSecond: p.bytes / p.seconds, queueDepth: qd });
  }
  return out;
}

// One thread of af_col_axpy over Q4_0 columns of 4096 outputs, as decode uses it.
function measureColumns(probe: DeviceProbe, seconds: number): number {
  const nOut = 4096, nCols = 256;
  const colBytes = (nOut / 32) * 18;
  const cols: Uint8Array[] = [];
  const buf = randomBytes(colBytes * nCols);
  // Q4_0 scales are f16 at the start of each 18-byte block: keep them small and finite.
  for (let b = 0; b < buf.length; b += 18) buf.writeUInt16LE(0x2000, b);
  for (let i = 0; i < nCols; i++) cols.push(buf.subarray(i * colBytes, (i + 1) * colBytes));
  const a = new Float32Array(nCols).fill(0.5);
  const y = new Float32Array(nOut);
  let bytes = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    probe.colAxpy(GgmlType.Q4_0, cols, a, y, 0, nOut);
    bytes += colBytes * nCols;
  }
  return bytes / ((performance.now() - t0) / 1000);
}

export async function machineProfile(probe: DeviceProbe, modelFile: string, options: { refresh?: boolean; seconds?: number } = {}): Promise<MachineProfile> {
  const key = await profileKey(modelFile);
  const path = join(cacheRoot(), "machine-profile.json");
  let all: Record<string, MachineProfile> = {};
  try {
    all = JSON.parse(await readFile(path, "utf8")) as Record<string, MachineProfile>;
  } catch {
    // no profile yet (or unreadable: measure again)
  }
  if (!options.refresh && all[key]?.readBandwidth?.length) return all[key]!;
  const seconds = options.seconds ?? 3;
  const profile: MachineProfile = {
    key,
    measuredAt: new Date().toISOString(),
    readBandwidth: await measureReads(probe, modelFile, seconds),
    columnBytesPerSecond: measureColumns(probe, Math.min(0.5, seconds / 4)),
  };
  all[key] = profile;
  await writeProfileFile(path, all);
  return profile;
}

// Writes the whole profile file through a temp file and a rename: a reader never sees half.
async function writeProfileFile(path: string, all: unknown): Promise<void> {
  await mkdir(cacheRoot(), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, JSON.stringify(all, null, 1));
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
}

// ---- Other per-machine measurements (e.g. the default thread count, src/engine/threads.ts),
// cached in the same file under their own keys. Kept apart from machineProfile() above. ----
export async function cachedProfileEntry<T>(key: string, measure: () => Promise<T>, refresh = false): Promise<T> {
  const path = join(cacheRoot(), "machine-profile.json");
  let all: Record<string, unknown> = {};
  try {
    all = JSON.parse(await readFile(path, "utf8")) as Record<string, unknown>;
  } catch {
    // no profile yet (or unreadable: measure again)
  }
  if (!refresh && all[key] !== undefined) return all[key] as T;
  const value = await measure();
  // Re-read so a profile written meanwhile (another process) is kept.
  try {
    all = JSON.parse(await readFile(path, "utf8")) as Record<string, unknown>;
  } catch {
    all = {};
  }
  all[key] = value;
  await writeProfileFile(path, all);
  return value;
}
