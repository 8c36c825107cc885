// Our flash reader's random-read bandwidth at one block size and queue depth: the engine's
// machine profile (the tuner's cost model), bench/io (the bandwidth model) and bench/pipeline
// (the roofline's flash term) all measure it this way.
import { statSync } from "node:fs";
import { performance } from "node:perf_hooks";
import type { DeviceProbe } from "../backend/Backend.js";

export interface ReaderPoint {
  engine: "io_uring" | "pread";
  blockBytes: number;
  queueDepth: number;
  seconds: number;
  bytes: number;
  reads: number;
  mbPerSecond: number; // 1e6 bytes per second
  iops: number;
  // Process CPU seconds (user + system) per GB read. The decode threads share these 2 cores,
  // so this is the other half of the io_uring vs pread choice.
  cpuSecondsPerGb: number;
}

export interface MeasureOptions {
  // Benchmarks refuse a file system without O_DIRECT (they would measure the page cache); the
  // engine's profile takes what the engine itself will get there. Defaults to true.
  requireDirect?: boolean;
  // Bytes of one batch; two batches are in flight. The profile runs inside the user's DRAM
  // budget and keeps this small. Defaults to at most 128 MiB (and at least 64 reads).
  maxBatchBytes?: number;
}

// Batches of random block-aligned reads of `file` (merging off, like fio), two batches in
// flight so the device queue stays full across batch boundaries, for `seconds`.
// `blockBytes` must be a multiple of 4096 (O_DIRECT).
export async function measureReader(
  io: Pick<DeviceProbe, "openFlashFile" | "allocAligned">,
  file: string,
  engine: "io_uring" | "pread",
  bs: number,
  qd: number,
  seconds: number,
  options: MeasureOptions = {},
): Promise<ReaderPoint> {
  const requireDirect = options.requireDirect ?? true;
  if (bs % 4096 !== 0) throw new Error(`reader block size ${bs} is not a multiple of 4096 (O_DIRECT)`);
  const h = io.openFlashFile(file, { direct: true, backend: engine, maxRead: Math.max(bs, 1 << 20) });
  if (requireDirect && h.mode() !== "direct") {
    h.close();
    throw new Error(`${file}: O_DIRECT refused; the numbers would measure the page cache`);
  }
  let perBatch = Math.max(64, Math.min(qd * 16, Math.floor((128 << 20) / bs)));
  if (options.maxBatchBytes !== undefined) perBatch = Math.max(qd, Math.min(perBatch, Math.floor(options.maxBatchBytes / bs)));
  const blocks = Math.floor(statSync(file).size / bs);
  let seed = (bs * 31 + qd) >>> 0 || 1;
  let bytes = 0, reads = 0;
  let deadline = 0;
  const makeLane = () => {
    // Aligned, pre-faulted memory: whole-block reads land in place, as fio's do.
    const into = io.allocAligned(perBatch * bs);
    const offsets = new Float64Array(perBatch), lengths = new Uint32Array(perBatch).fill(bs);
    return async () => {
      while (performance.now() < deadline) {
        for (let i = 0; i < perBatch; i++) {
          seed ^= seed << 13; // xorshift32
          seed >>>= 0;
          seed ^= seed >>> 17;
          seed ^= seed << 5;
          seed >>>= 0;
          offsets[i] = (seed % blocks) * bs;
        }
        const { stats } = await h.readRanges(offsets, lengths, -1, qd, { into });
        bytes += stats.bytesRead;
        reads += stats.deviceReads;
      }
    };
  };
  const lanes = [makeLane(), makeLane()];
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  deadline = t0 + seconds * 1000;
  await Promise.all(lanes.map((run) => run()));
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  h.close();
  return {
    engine, blockBytes: bs, queueDepth: qd, seconds: elapsed, bytes, reads, mbPerSecond: bytes / elapsed / 1e6,
    iops: reads / elapsed, cpuSecondsPerGb: (cpu.user + cpu.system) / 1e6 / (bytes / 1e9),
  };
}
