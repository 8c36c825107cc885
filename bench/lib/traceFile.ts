// Active-set traces on disk: <name>.trace.json (the header below) beside <name>.trace.bin, the
// rows as the engine's ActivationStats packs them: [rows][nLayer][site][ceil(widths[site] / 8)]
// bytes, bit j (LSB first) set when input channel j of that (layer, site) was active.
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import type { ActivationTrace } from "../../src/backend/Backend.js";

export const TRACE_VERSION = 1;

// What a trace may be used for: calibration traces tune (hot sets, orders); evaluation traces
// only score. wiki.test.raw is evaluation-only and carries its own label.
export type TraceUse = "calibration" | "evaluation" | "evaluation-wiki" | "engine-check";

export interface TraceSequence {
  name: string;
  // story, code, instructions, facts, chat, calibration, wiki, ...
  register: string;
  // greedy / sampled generation, or teacher-forced text.
  mode: "greedy" | "sampled" | "teacher-forced";
  firstRow: number;
  rows: number;
  firstPass: number;
  passes: number;
  promptTokens: number;
  generatedTokens: number;
  // Rows evaluated before the first generated token: the prompt, or only its tail when the
  // engine reused the KV cache of a previous sequence sharing the prompt's prefix.
  prefillRows: number;
  // The engine started from an empty context (it restarts the cache's LFU counts then).
  freshContext: boolean;
  text?: string;
}

export interface TraceHeader {
  version: number;
  use: TraceUse;
  model: string; // the flash file the trace was taken on
  source: string; // the GGUF it was converted from
  columnTypes: number[]; // per site
  sparsity: number;
  calibration: { method?: string; source: string; tokens: number };
  nLayer: number;
  widths: number[];
  rowBytes: number;
  rows: number;
  // Rows of each evaluation pass in order: a prefill chunk (up to the engine's batch) or one
  // decode token. The engine's cache sees the union of a pass's rows as one visit.
  passes: number[];
  sequences: TraceSequence[];
  createdAt: string;
  notes: string[];
  // Recorded under a real budget: the engine's own cache counters, to check the simulator.
  engine?: { dram: string; cacheBytes: number; lookups: number; hits: number; cacheHitRate: number };
}

export interface Trace {
  header: TraceHeader;
  bits: Uint8Array;
}

// Appends the engine's trace rows to an in-memory trace.
export class TraceBuilder {
  private chunks: Uint8Array[] = [];
  rows = 0;
  passes: number[] = [];
  rowBytes = 0;
  nLayer = 0;
  widths: number[] = [];

  add(t: ActivationTrace): void {
    if (this.rowBytes === 0) {
      this.rowBytes = t.rowBytes;
      this.nLayer = t.nLayer;
      this.widths = [...t.widths];
    } else if (t.rowBytes !== this.rowBytes) {
      throw new Error(`trace rows of ${t.rowBytes} bytes after rows of ${this.rowBytes}`);
    }
    this.chunks.push(t.bits);
    this.rows += t.rows;
    this.passes.push(...t.passes);
  }

  bits(): Uint8Array {
    const out = new Uint8Array(this.rows * this.rowBytes);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

export function writeTrace(base: string, header: TraceHeader, bits: Uint8Array): void {
  if (bits.length !== header.rows * header.rowBytes) throw new Error(`${base}: ${bits.length} bytes for ${header.rows} rows of ${header.rowBytes}`);
  writeFileSync(`${base}.trace.bin.tmp`, bits);
  renameSync(`${base}.trace.bin.tmp`, `${base}.trace.bin`);
  writeFileSync(`${base}.trace.json.tmp`, `${JSON.stringify(header, null, 1)}\n`);
  renameSync(`${base}.trace.json.tmp`, `${base}.trace.json`);
}

export function readTrace(base: string): Trace {
  const header = JSON.parse(readFileSync(`${base}.trace.json`, "utf8")) as TraceHeader;
  if (header.version !== TRACE_VERSION) throw new Error(`${base}.trace.json: version ${header.version}, expected ${TRACE_VERSION}`);
  const buf = readFileSync(`${base}.trace.bin`);
  const bits = new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
  if (bits.length !== header.rows * header.rowBytes) throw new Error(`${base}.trace.bin: ${bits.length} bytes, header says ${header.rows} x ${header.rowBytes}`);
  return { header, bits };
}

// Byte offset of (layer, site) inside a row, and its bytes.
export function siteSpan(h: Pick<TraceHeader, "widths">, layer: number, site: number): { at: number; bytes: number } {
  const layerBytes = h.widths.reduce((a, w) => a + Math.ceil(w / 8), 0);
  let at = layer * layerBytes;
  for (let s = 0; s < site; s++) at += Math.ceil(h.widths[s]! / 8);
  return { at, bytes: Math.ceil(h.widths[site]! / 8) };
}
