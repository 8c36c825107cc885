import type { ActivationCounts, ActivationTrace, Backend, BackendExpertStats, BackendIoDefaults, BackendModel, BackendModelSpec, SiteHistograms, BackendFlashStats } from "../../backend/Backend.js";
import type { FlashHandle, OpenFlashFileOptions, ProbeOptions, ProbeResult, ThreadScaling } from "../../backend/probeTypes.js";
import { loadAddon } from "./binding.js";

export class NativeBackend implements Backend {
  readonly name = "native";
  async loadModel(spec: BackendModelSpec): Promise<BackendModel> {
    // The model object is the addon's own: its errors are ActiveflowErrors already (binding.ts).
    return loadAddon().loadModel(spec);
  }
  ioDefaults(): BackendIoDefaults {
    return loadAddon().ioDefaults();
  }

  // Conversion kernels.
  dequantizeRow(type: number, bytes: Uint8Array, n: number): Float32Array {
    return loadAddon().dequantizeRow(type, bytes, n);
  }
  quantizeRow(type: number, x: Float32Array): Uint8Array {
    return loadAddon().quantizeRow(type, x);
  }
  colxSplitScales(type: number, rows: Uint8Array, nOut: number, nIn: number): Uint8Array {
    return loadAddon().colxSplitScales(type, rows, nOut, nIn);
  }
  colxSplitCodes(type: number, rows: Uint8Array, nOut: number, nIn: number, j0: number, nj: number, out: Uint8Array, offset: number, stride: number): void {
    loadAddon().colxSplitCodes(type, rows, nOut, nIn, j0, nj, out, offset, stride);
  }
  crc32c(bytes: Uint8Array, seed?: number): number {
    return loadAddon().crc32c(bytes, seed);
  }

  // Device probe.
  probeDevice(path: string, options: ProbeOptions): Promise<ProbeResult> {
    return loadAddon().probeDevice(path, options);
  }
  openFlashFile(path: string, options?: OpenFlashFileOptions): FlashHandle {
    return loadAddon().openFlashFile(path, options);
  }
  allocAligned(bytes: number): Uint8Array {
    return loadAddon().allocAligned(bytes);
  }
  colAxpy(type: number, cols: Uint8Array[], a: Float32Array, y: Float32Array, e0: number, e1: number): void {
    loadAddon().colAxpy(type, cols, a, y, e0, e1);
  }

  columnSquares(type: number, bytes: Uint8Array, rows: number, n: number, out: Float64Array): void {
    loadAddon().columnSquares(type, bytes, rows, n, out);
  }

  threadScaling(maxThreads: number, bytes: number, seconds: number): Promise<ThreadScaling[]> {
    return loadAddon().threadScaling(maxThreads, bytes, seconds);
  }
}
