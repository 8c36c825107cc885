// Types of the addon's flash I/O entry points (native/addon/io_binding.cpp), used by tests,
// the I/O benchmark and the converter (crc32c). The engine reads weights from C++ directly.
// Errors carry a `code`: "FLASH_IO" (open/read failures, io_uring refused when forced),
// "FLASH_CHECKSUM" (a page failed its CRC-32C; the message names the page's file offset),
// "BAD_ARGUMENT", "DISPOSED".

// "auto" picks io_uring when io_uring_setup works here, else the pread thread pool.
export type IoBackendName = "auto" | "io_uring" | "pread";

export interface OpenFlashFileOptions {
  // O_DIRECT; falls back to buffered reads + posix_fadvise(DONTNEED) where refused. Defaults to true.
  direct?: boolean;
  // Defaults to "auto".
  backend?: IoBackendName;
  // Largest single device read in bytes, a multiple of 4096. Defaults to 1 MiB.
  maxRead?: number;
}

export interface ReadRangesOptions {
  // Expected CRC-32C of each 4 KiB page of a region starting at checksumBase.
  checksums?: Uint32Array;
  // File offset of the region's first page, a multiple of 4096. Defaults to 0.
  checksumBase?: number;
  // Destination for the concatenated bytes (avoids a fresh allocation per call).
  into?: Uint8Array;
}

export interface ReadStats {
  bytesRequested: number;
  // Bytes the device returned (aligned, coalesced reads).
  bytesRead: number;
  deviceReads: number;
  pagesVerified: number;
  // Reads that landed in the destination without a staging copy (one page-aligned range
  // into a 4 KiB-aligned destination, e.g. from allocAligned).
  inPlaceReads: number;
  // Loader thread time from batch start to the last copy.
  ioSeconds: number;
  // Time the worker thread waited for the batch.
  waitSeconds: number;
  backend: "io_uring" | "pread";
}

export interface FlashHandle {
  // Reads lengths[i] bytes at offsets[i] for every i, concatenated in request order.
  // maxGap: merge reads whose page-widened extents are at most this far apart (negative:
  // never merge). Defaults to 16384. qd: reads in flight. Defaults to 32.
  readRanges(
    offsets: Float64Array | BigUint64Array,
    lengths: Uint32Array,
    maxGap?: number,
    qd?: number,
    options?: ReadRangesOptions,
  ): Promise<{ data: Uint8Array; stats: ReadStats }>;
  // "direct" (O_DIRECT) or "buffered" (the filesystem refused O_DIRECT).
  mode(): "direct" | "buffered";
  size(): number;
  backend(): "io_uring" | "pread";
  close(): void;
}

export interface IoBindings {
  openFlashFile(path: string, options?: OpenFlashFileOptions): FlashHandle;
  // CRC-32C (Castagnoli); seed chains: crc32c(b, crc32c(a)) === crc32c(a ++ b).
  // path forces the SSE4.2 ("hw") or table ("scalar") code. Defaults to "auto".
  crc32c(bytes: Uint8Array, seed?: number, path?: "auto" | "hw" | "scalar"): number;
  // The path "auto" uses (AF_CRC32C=scalar forces the table) and whether the CPU has crc32.
  crc32cInfo(): { path: "sse42" | "scalar"; hw: boolean };
  // The aligned device reads a batch would issue, without reading.
  planFlashReads(
    offsets: Float64Array | BigUint64Array,
    lengths: Uint32Array,
    maxGap: number,
    maxRead: number,
    fileSize: number,
    // A device read-cost curve (seconds per read by size): merge by cost instead of maxGap.
    cost?: { bytes: number[]; seconds: number[] },
  ): { offsets: Float64Array; lengths: Uint32Array; bytesRequested: number };
  // Zeroed memory aligned to 4 KiB (native, freed with the array), for `into` buffers whose
  // aligned ranges should land without a copy.
  allocAligned(bytes: number): Uint8Array;
  // What "auto" resolves to on this machine.
  ioDefaultBackend(): "io_uring" | "pread";
  // The device's own random-read speed at one size and depth: every completion is replaced
  // at once by a new random aligned read (fio's randread), for `seconds`, on a worker thread.
  probeDevice(path: string, options: ProbeOptions): Promise<ProbeResult>;
  // Device seconds the reads of these lengths take by a read-cost curve (the planner's model).
  readCostSeconds(cost: { bytes: number[]; seconds: number[] }, lengths: Uint32Array): number;
  // The flash I/O path's defaults (native/io/io_defaults.h).
  ioDefaults(): IoDefaults;
}

export interface IoDefaults {
  queueDepth: number;
  maxRead: number;
  maxBackground: number;
  maxGap: number;
  stagingSlots: number;
}

export interface ProbeOptions {
  blockBytes: number; // a multiple of 4096
  queueDepth: number;
  seconds: number;
  // Reads in this first stretch are not counted (a throttled device lets a burst through at
  // the start). Defaults to 0.
  warmupSeconds?: number;
  // O_DIRECT (falls back to buffered reads where refused: see `direct` in the result). Defaults to true.
  direct?: boolean;
  backend?: "auto" | "io_uring" | "pread";
  seed?: number;
}

export interface ProbeResult {
  reads: number;
  bytes: number;
  seconds: number;
  meanLatencyUs: number;
  p50LatencyUs: number;
  p99LatencyUs: number;
  backend: "io_uring" | "pread";
  direct: boolean;
}
