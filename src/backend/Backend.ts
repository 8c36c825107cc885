// The line between the platform-free core and a compute backend (native addon now,
// WebAssembly later). The core decides; the backend computes and owns the weight bytes.
import type { ModelConfig } from "../model/config.js";
import type { FlashCounters } from "./flashCounters.js";
import type { FlashHandle, OpenFlashFileOptions, ProbeOptions, ProbeResult, ThreadScaling } from "./probeTypes.js";

export interface BackendTensor {
  name: string;
  type: number;
  dims: number[];
  // Absolute offset of the tensor's bytes in the model file.
  offset: number;
}

// One extent of a flash-layout model as the native column store needs it.
export interface BackendExtent {
  group: number;
  site: number; // index in SITES
  firstLayer: number;
  layers: number;
  tensors: number;
  type: number; // column type (the extent tensor's type: I8 for split records)
  nIn: number;
  offset: number; // absolute file offset of record 0
  recordBytes: number;
  // [layers][tensors]. type: the part's block type (column type, or split source type);
  // scales: split parts only, the name of the part's scale plane among the resident tensors.
  parts: { offset: number; bytes: number; nOut: number; type: number; scales?: string }[];
  // [nIn] channel -> the record holding it, when the file has a record order.
  recordOf?: Int32Array;
  // [nIn] calibrated activity per record (file order), when the file has it (static policy).
  recordFreq?: Float32Array;
}

export interface BackendFlashSpec {
  groupSize: number;
  extents: BackendExtent[];
  crcs: Uint32Array;
  crcBase: number;
  verify: boolean;
  direct: boolean;
  cacheBytes: number;
  embdResident: boolean;
  headResident: boolean;
  headStagingBytes: number;
  // I/O overrides; absent: the backend's defaults (ioDefaults()).
  queueDepth?: number;
  maxRead?: number;
  // Merge reads across gaps up to this many bytes (< 0: never) instead of by readCost.
  maxGap?: number;
  // The device's seconds per read by size: the read planner merges by cost (and the hot cache
  // favours extents whose misses cost most per byte). Absent: merge by the default gap.
  readCost?: { bytes: number[]; seconds: number[] };
  cachePolicy?: "lfu" | "prefix" | "static";
  // Both preload buffers; 0 disables preloading.
  preloadBytes?: number;
  predict?: boolean;
  // Read every uncached record of the next site while one computes (groups of one layer).
  readAhead?: boolean;
  predictMargin?: number;
  // Mixture-of-experts models: the experts on flash (native/model/expert_store.h).
  experts?: BackendExperts;
}

// One (layer, expert) span: ffn_in records from `offset`, ffn_out records at `outOffset` from
// it, the whole expert `bytes` long (whole pages). parts: gate, up, down; scales: bytes from
// the span start of a split part's scale plane, -1 for requantised columns.
export interface BackendExpertSpan {
  offset: number;
  bytes: number;
  outOffset: number;
  recIn: number;
  recOut: number;
  nIn: number;
  nFf: number;
  parts: { offset: number; bytes: number; nOut: number; type: number; scales: number }[];
}

export interface BackendExperts {
  perLayer: number; // routed experts + the shared one
  poolBytes: number; // the expert slots' share of the budget
  pregate: boolean; // read the next layer's predicted experts ahead
  spans: BackendExpertSpan[]; // [n_layer][perLayer]
}

// The expert store's counters since the last reset.
export interface BackendExpertStats {
  lookups: number;
  hits: number;
  prefetchHits: number;
  reads: number;
  prefetches: number;
  bytesRead: number;
  predTp: number;
  predFp: number;
  predFn: number;
  waitSeconds: number;
  computeSeconds: number;
  slots: number;
  slotBytes: number;
  cachedExperts: number;
}

export interface BackendModelSpec {
  path: string;
  config: ModelConfig & { nCtx: number; nBatch: number };
  // Dense: every tensor of the GGUF. Flash: the resident tensors only.
  tensors: BackendTensor[];
  threads: number;
  flash?: BackendFlashSpec;
}

export interface BackendFlashStats extends FlashCounters {
  weightResidentBytes: number;
  scratchBytes: number;
  kvBytes: number;
  // Absent for a dense model.
  headBytesRead?: number;
  cacheBytes?: number;
  stagingBytes?: number;
  preloadBufferBytes?: number;
  // Records the hot cache has room for, per extent in file order (how the budget was split).
  cacheSlots?: Int32Array;
  // [site][distance 0..4]: prediction counts of decode tokens (0: one sub-block ahead).
  prediction?: { tp: number; fp: number; fn: number }[][];
  // [nLayer][site][distance 0..4][tp, fp, fn], flat (distance 0 unused).
  predictionByLayer?: Float64Array;
}

export interface BackendModelInfo {
  fileBytes: number;
  kvBytes: number;
  threads: number;
  isa: string;
}

export const SITES = ["attn_in", "attn_out", "ffn_in", "ffn_out"] as const;
export type Site = (typeof SITES)[number];

// |x| counts per (layer, site): bins log2-spaced, perOctave per octave from 2^minLog2;
// bin 0 also holds zeros and everything below the range.
export interface SiteHistograms {
  counts: Float64Array; // [nLayer][4][bins]
  bins: number;
  perOctave: number;
  minLog2: number;
}

// Rows (evaluated tokens) in which each input channel was active, per (layer, site).
export interface ActivationCounts {
  counts: Float64Array; // [nLayer][site][widths[site]], sites in SITES order
  rows: number;
  widths: number[]; // input channels per site
}

// The active input channels of every evaluated row, as bitsets.
export interface ActivationTrace {
  bits: Uint8Array; // [rows][rowBytes]; a row is [nLayer][site][ceil(widths[site] / 8)] bytes, LSB first
  rows: number;
  rowBytes: number;
  passes: Int32Array; // rows of each evaluation pass (a prefill chunk or one decode token), in order
  nLayer: number;
  widths: number[];
}

export interface BackendModel {
  // Evaluates tokens at positions [pos, pos + n) and writes the last token's logits
  // ([nVocab]) or, with allLogits, every token's ([n][nVocab]) into `logits`.
  eval(tokens: Int32Array, pos: number, logits: Float32Array, allLogits: boolean): Promise<void>;
  // Makes a running eval reject with code ABORTED at its next layer boundary.
  abort(): void;
  setThreads(threads: number): void;
  // Contextual sparsity: per (layer, site) magnitude thresholds, [nLayer * 4] in site order
  // attn_in, attn_out, ffn_in, ffn_out; null restores the dense model.
  setThresholds(thresholds: Float32Array | null): void;
  // Weight-aware selection: keep x_j when |x_j| * norms_j > threshold; norms [nLayer][4][site
  // width] (src/sparsity/columnNorms.ts), null = magnitude (|x_j| > threshold). Histograms,
  // counts, traces and the predictor follow the same score.
  setColumnNorms(norms: Float32Array | null): void;
  // Accumulate score histograms (|x|, or |x| x column norm) of every site input (clear = start from zero).
  setCapture(on: boolean, clear?: boolean): void;
  histograms(): SiteHistograms;
  // Per-channel active counts and the active-set trace of every site input (active:
  // |x| > threshold, every channel when dense); clear drops what was gathered so far.
  setActivationCapture(counts: boolean, trace: boolean, clear?: boolean): void;
  activationCounts(reset?: boolean): ActivationCounts;
  // Moves the rows traced so far out of the backend.
  takeActivationTrace(): ActivationTrace;
  // Elements kept / seen per site since the last reset.
  siteCounts(reset?: boolean): { kept: number[]; seen: number[] };
  flashStats(reset?: boolean): BackendFlashStats;
  // Re-plans the hot cache of a flash-layout model between tokens.
  setCacheBytes(bytes: number): void;
  resetCacheCounts(): void;
  // Mixture-of-experts models in the flash layout: the expert store (undefined otherwise).
  expertStats(reset?: boolean): BackendExpertStats | undefined;
  setExpertPoolBytes(bytes: number): void;
  info(): BackendModelInfo;
  dispose(): void;
}

// The flash I/O path's defaults: the budget plan counts the reader's staging with them.
export interface BackendIoDefaults {
  queueDepth: number;
  maxRead: number;
  maxBackground: number;
  maxGap: number;
  // Reads landing in the reader's own staging at once: the staging is stagingSlots x maxRead.
  stagingSlots: number;
}

// What the core takes from a backend besides running a model, in narrow groups: each module
// asks for the group it uses (a Pick of Backend), so a second backend (WebAssembly) can see
// what each path needs. Type ids are GGML's (GgmlType); bad arguments throw BAD_ARGUMENT.

// The flash converter's arithmetic (src/flash/convert.ts): synchronous, one band at a time.
export interface ConversionKernels {
  // Dequantises n elements of one row.
  dequantizeRow(type: number, bytes: Uint8Array, n: number): Float32Array;
  // Reference (round-to-nearest) quantisation of one row; x.length a multiple of the block size.
  quantizeRow(type: number, x: Float32Array): Uint8Array;
  // The scale plane of a Q4_0 / Q4_1 / Q8_0 source matrix (nOut rows of nIn elements).
  colxSplitScales(type: number, rows: Uint8Array, nOut: number, nIn: number): Uint8Array;
  // Codes of channels j0 .. j0 + nj - 1 of the source matrix, channel j0 + k written at
  // out[offset + k * stride ...].
  colxSplitCodes(type: number, rows: Uint8Array, nOut: number, nIn: number, j0: number, nj: number,
    out: Uint8Array, offset: number, stride: number): void;
  // CRC-32C (Castagnoli) of the page checksums; seed chains: crc32c(b, crc32c(a)) === crc32c(a ++ b).
  crc32c(bytes: Uint8Array, seed?: number): number;
}

// This machine's device and kernel speeds (src/pipeline/profile.ts, readBandwidth.ts).
export interface DeviceProbe {
  // The flash I/O path's defaults: the budget plan counts the reader's staging with them.
  ioDefaults(): BackendIoDefaults;
  // Random aligned reads of `path` at one size and depth for `seconds` (fio's randread), off
  // the event loop.
  probeDevice(path: string, options: ProbeOptions): Promise<ProbeResult>;
  // The engine's flash reader on one file (benchmarks of batched reads).
  openFlashFile(path: string, options?: OpenFlashFileOptions): FlashHandle;
  // Zeroed memory aligned to 4 KiB, for reads that land without a copy.
  allocAligned(bytes: number): Uint8Array;
  // y[e] += sum_i a[i] * dequant(cols[i])[e] for e in [e0, e1): the sparse column kernel,
  // timed for the tuner's compute term.
  colAxpy(type: number, cols: Uint8Array[], a: Float32Array, y: Float32Array, e0: number, e1: number): void;
}

// Weight statistics (src/sparsity/columnNorms.ts).
export interface WeightStatistics {
  // Adds the squares of each column of `rows` dequantised rows of n elements to out [n].
  columnSquares(type: number, bytes: Uint8Array, rows: number, n: number, out: Float64Array): void;
}

// The default thread count's measurement (src/engine/threads.ts).
export interface ThreadProbe {
  // The backend's thread pool at 1..maxThreads threads over about `bytes` of weights: decode
  // bytes per second and prefill multiply-adds per second, about `seconds` in all, off the
  // event loop.
  threadScaling(maxThreads: number, bytes: number, seconds: number): Promise<ThreadScaling[]>;
}

export interface Backend extends ConversionKernels, DeviceProbe, WeightStatistics, ThreadProbe {
  readonly name: string;
  loadModel(spec: BackendModelSpec): Promise<BackendModel>;
}
