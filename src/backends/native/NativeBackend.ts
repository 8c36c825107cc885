import type { ActivationCounts, ActivationTrace, Backend, BackendExpertStats, BackendIoDefaults, BackendModel, BackendModelSpec, SiteHistograms, BackendFlashStats } from "../../backend/Backend.js";
import type { FlashHandle, OpenFlashFileOptions, ProbeOptions, ProbeResult, ThreadScaling } from "../../backend/probeTypes.js";
import { ActiveflowError, type ErrorCode } from "../../errors.js";
import { loadAddon } from "./binding.js";

// Native errors carry a `code`; re-raise them as typed ActiveflowErrors.
export function fromNativeError(e: unknown): unknown {
  const code = e instanceof Error ? (e as Error & { code?: unknown }).code : undefined;
  if (e instanceof Error && typeof code === "string") {
    return new ActiveflowError(code as ErrorCode, e.message, { cause: e });
  }
  return e;
}

// The addon call `fn`, its native errors re-raised as ActiveflowErrors.
function call<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw fromNativeError(e);
  }
}

async function callAsync<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw fromNativeError(e);
  }
}

class NativeModel implements BackendModel {
  constructor(private readonly inner: BackendModel) {}
  async eval(tokens: Int32Array, pos: number, logits: Float32Array, allLogits: boolean): Promise<void> {
    try {
      await this.inner.eval(tokens, pos, logits, allLogits);
    } catch (e) {
      throw fromNativeError(e);
    }
  }
  abort(): void {
    this.inner.abort();
  }
  setThreads(threads: number): void {
    try {
      this.inner.setThreads(threads);
    } catch (e) {
      throw fromNativeError(e);
    }
  }
  info() {
    return this.inner.info();
  }
  setThresholds(thresholds: Float32Array | null): void {
    try {
      this.inner.setThresholds(thresholds);
    } catch (e) {
      throw fromNativeError(e);
    }
  }
  setColumnNorms(norms: Float32Array | null): void {
    try {
      this.inner.setColumnNorms(norms);
    } catch (e) {
      throw fromNativeError(e);
    }
  }
  setCapture(on: boolean, clear?: boolean): void {
    this.inner.setCapture(on, clear);
  }
  histograms(): SiteHistograms {
    return this.inner.histograms();
  }
  setActivationCapture(counts: boolean, trace: boolean, clear?: boolean): void {
    try {
      this.inner.setActivationCapture(counts, trace, clear);
    } catch (e) {
      throw fromNativeError(e);
    }
  }
  activationCounts(reset?: boolean): ActivationCounts {
    try {
      return this.inner.activationCounts(reset);
    } catch (e) {
      throw fromNativeError(e);
    }
  }
  takeActivationTrace(): ActivationTrace {
    try {
      return this.inner.takeActivationTrace();
    } catch (e) {
      throw fromNativeError(e);
    }
  }
  siteCounts(reset?: boolean): { kept: number[]; seen: number[] } {
    return this.inner.siteCounts(reset);
  }
  flashStats(reset?: boolean): BackendFlashStats {
    return this.inner.flashStats(reset);
  }
  setCacheBytes(bytes: number): void {
    try {
      this.inner.setCacheBytes(bytes);
    } catch (e) {
      throw fromNativeError(e);
    }
  }
  resetCacheCounts(): void {
    this.inner.resetCacheCounts();
  }
  expertStats(reset?: boolean): BackendExpertStats | undefined {
    return this.inner.expertStats(reset);
  }
  setExpertPoolBytes(bytes: number): void {
    try {
      this.inner.setExpertPoolBytes(bytes);
    } catch (e) {
      throw fromNativeError(e);
    }
  }
  dispose(): void {
    this.inner.dispose();
  }
}

export class NativeBackend implements Backend {
  readonly name = "native";
  async loadModel(spec: BackendModelSpec): Promise<BackendModel> {
    const addon = loadAddon();
    try {
      return new NativeModel(await addon.loadModel(spec));
    } catch (e) {
      throw fromNativeError(e);
    }
  }
  ioDefaults(): BackendIoDefaults {
    return loadAddon().ioDefaults();
  }

  // Conversion kernels.
  dequantizeRow(type: number, bytes: Uint8Array, n: number): Float32Array {
    return call(() => loadAddon().dequantizeRow(type, bytes, n));
  }
  quantizeRow(type: number, x: Float32Array): Uint8Array {
    return call(() => loadAddon().quantizeRow(type, x));
  }
  colxSplitScales(type: number, rows: Uint8Array, nOut: number, nIn: number): Uint8Array {
    return call(() => loadAddon().colxSplitScales(type, rows, nOut, nIn));
  }
  colxSplitCodes(type: number, rows: Uint8Array, nOut: number, nIn: number, j0: number, nj: number, out: Uint8Array, offset: number, stride: number): void {
    call(() => loadAddon().colxSplitCodes(type, rows, nOut, nIn, j0, nj, out, offset, stride));
  }
  crc32c(bytes: Uint8Array, seed?: number): number {
    return call(() => loadAddon().crc32c(bytes, seed));
  }

  // Device probe.
  probeDevice(path: string, options: ProbeOptions): Promise<ProbeResult> {
    return callAsync(() => loadAddon().probeDevice(path, options));
  }
  openFlashFile(path: string, options?: OpenFlashFileOptions): FlashHandle {
    return call(() => loadAddon().openFlashFile(path, options));
  }
  allocAligned(bytes: number): Uint8Array {
    return call(() => loadAddon().allocAligned(bytes));
  }
  colAxpy(type: number, cols: Uint8Array[], a: Float32Array, y: Float32Array, e0: number, e1: number): void {
    call(() => loadAddon().colAxpy(type, cols, a, y, e0, e1));
  }

  columnSquares(type: number, bytes: Uint8Array, rows: number, n: number, out: Float64Array): void {
    call(() => loadAddon().columnSquares(type, bytes, rows, n, out));
  }

  threadScaling(maxThreads: number, bytes: number, seconds: number): Promise<ThreadScaling[]> {
    return callAsync(() => loadAddon().threadScaling(maxThreads, bytes, seconds));
  }
}
