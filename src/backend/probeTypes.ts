// The data a backend's device and thread probes exchange with the core (flash file handles,
// device probes, thread scaling): plain types, so the core can take them from any backend.
// The native addon's bindings (src/backends/native/ioTypes.ts) use these same types.

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

export interface ThreadScaling {
  threads: number;
  decodeBytesPerSecond: number;
  prefillMacsPerSecond: number;
}
