// The roofline of one decode configuration: a token cannot be faster than its flash bytes at
// the flash bandwidth measured for its mean read size, nor than the DRAM bytes it touches at
// the measured memory bandwidth. Also the single-thread memory-bandwidth probe.
import { performance } from "node:perf_hooks";

export interface MemoryBandwidth {
  // memcmp of two equal buffers (Buffer.compare): bytes read / s over both, best of `reps`.
  readBytesPerSecond: number;
  // memcpy (Buffer.copy): bytes copied / s (each byte read once and written once), best of `reps`.
  copyBytesPerSecond: number;
  bufferBytes: number;
  reps: number;
}

// One thread, like the decode's column compute at --threads 1: large buffers so caches do
// not count; filled first so every page is faulted in before timing.
export function measureMemoryBandwidth(bufferBytes = 256 << 20, reps = 5): MemoryBandwidth {
  const a = Buffer.alloc(bufferBytes, 0x5a);
  const b = Buffer.alloc(bufferBytes, 0x5a);
  let bestRead = Infinity, bestCopy = Infinity;
  for (let i = 0; i < reps; i++) {
    let t = performance.now();
    if (Buffer.compare(a, b) !== 0) throw new Error("memory bandwidth probe: equal buffers compared unequal");
    bestRead = Math.min(bestRead, performance.now() - t);
    t = performance.now();
    a.copy(b);
    bestCopy = Math.min(bestCopy, performance.now() - t);
  }
  return {
    readBytesPerSecond: (2 * bufferBytes) / (bestRead / 1000),
    copyBytesPerSecond: bufferBytes / (bestCopy / 1000),
    bufferBytes,
    reps,
  };
}

export interface Roofline {
  flashBytesPerToken: number;
  flashBytesPerSecond: number; // our reader at the achieved mean read size, queue depth 8
  dramBytesPerToken: number; // active weight bytes + head + KV read per token
  memoryBytesPerSecond: number;
  flashSecondsPerToken: number;
  dramSecondsPerToken: number;
  boundTokensPerSecond: number;
  limitedBy: "flash" | "dram";
}

export function roofline(flashBytesPerToken: number, flashBytesPerSecond: number, dramBytesPerToken: number, memoryBytesPerSecond: number): Roofline {
  const f = flashBytesPerToken / flashBytesPerSecond;
  const d = dramBytesPerToken / memoryBytesPerSecond;
  return {
    flashBytesPerToken, flashBytesPerSecond, dramBytesPerToken, memoryBytesPerSecond,
    flashSecondsPerToken: f, dramSecondsPerToken: d, boundTokensPerSecond: 1 / Math.max(f, d), limitedBy: f >= d ? "flash" : "dram",
  };
}

// Read size our reader is measured at: the achieved mean, rounded to whole 4 KiB pages (O_DIRECT).
export function readerBlockFor(meanReadBytes: number): number {
  return Math.max(4096, Math.round(meanReadBytes / 4096) * 4096);
}
