// Types of the addon's flash I/O entry points (native/addon/io_binding.cpp), used by tests,
// the I/O benchmark and the converter (crc32c). The engine reads weights from C++ directly.
// Errors carry a `code`: "FLASH_IO" (open/read failures, io_uring refused when forced),
// "FLASH_CHECKSUM" (a page failed its CRC-32C; the message names the page's file offset),
// "BAD_ARGUMENT", "DISPOSED". The handle and probe types are the backend contract's
// (src/backend/probeTypes.ts), shared with the core.
import type { FlashHandle, OpenFlashFileOptions, ProbeOptions, ProbeResult } from "../../backend/probeTypes.js";

export type { FlashHandle, IoBackendName, OpenFlashFileOptions, ProbeOptions, ProbeResult, ReadRangesOptions, ReadStats } from "../../backend/probeTypes.js";

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
