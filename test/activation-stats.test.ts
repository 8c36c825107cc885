// ActivationStats (native/model/activation_stats.*): per-channel active counts and the active-set
// trace agree with each other, with the engine's own kept counts and, at layer 0's attention
// input, with |rmsnorm(embedding) * norm| > threshold computed here from the file; passes follow
// the evaluation chunks; dense runs mark every channel; histograms do not change when counts
// and traces are gathered beside them; bad arguments are refused.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SITES, type ActivationTrace, type BackendModel } from "../src/backend/Backend.js";
import { Engine } from "../src/index.js";
import { isActiveflowError } from "../src/errors.js";
import { readGguf } from "../src/gguf/reader.js";
import { GgmlType } from "../src/gguf/types.js";
import { thresholdsAt } from "../src/sparsity/thresholds.js";
import { synthesizeModel } from "../src/synth/synth.js";

let dir = "";
let model = "";

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "af-actstats-"));
  model = join(dir, "small.gguf");
  await synthesizeModel("small", GgmlType.F32, model, { seed: 7 });
});

after(async () => {
  if (dir !== "") await rm(dir, { recursive: true, force: true });
});

const IDS = Array.from({ length: 100 }, (_, i) => 3 + ((i * 37) % 500));

function thresholdsOf(e: Engine, value: number): Float32Array {
  return new Float32Array(e.config.nLayer * SITES.length).fill(value);
}

// Thresholds that drop half of each site's dense inputs on IDS.
async function halfThresholds(e: Engine): Promise<Float32Array> {
  e.setCapture(true, true);
  await e.evaluateLogits(IDS);
  e.setCapture(false);
  return thresholdsAt(e.histograms(), new Float32Array(e.config.nLayer * SITES.length).fill(0.5));
}

function bit(t: ActivationTrace, row: number, layer: number, site: number, j: number): boolean {
  let at = row * t.rowBytes;
  for (let l = 0; l < layer; l++) for (const w of t.widths) at += Math.ceil(w / 8);
  for (let s = 0; s < site; s++) at += Math.ceil(t.widths[s]! / 8);
  return ((t.bits[at + (j >> 3)]! >> (j & 7)) & 1) === 1;
}

test("counts, trace and the engine's kept counts agree; passes follow the evaluation chunks", async () => {
  const e = await Engine.load(model, { contextLength: 256 });
  try {
    e.setThresholds(await halfThresholds(e));
    e.siteCounts(true);
    e.setActivationCapture(true, true, true);
    await e.evaluateLogits(IDS); // dense engine: chunks of 64
    const gen = e.generate([1, 5, 9], { maxTokens: 4, temperature: 0, stopAtEos: false });
    for (let r = await gen.next(); !r.done; r = await gen.next());
    const trace = e.takeActivationTrace();
    const counts = e.activationCounts();
    const kept = e.siteCounts();
    const { nLayer } = e.config;
    // 100 teacher-forced rows in chunks of 64 + 36, the prompt's 3 rows, then 3 decode tokens.
    assert.deepEqual([...trace.passes], [64, 36, 3, 1, 1, 1]);
    assert.equal(trace.rows, 106);
    assert.equal(counts.rows, 106);
    assert.equal(trace.nLayer, nLayer);
    assert.deepEqual(trace.widths, [e.config.nEmbd, e.config.nHead * e.config.headDim, e.config.nEmbd, e.config.nFf]);
    assert.equal(trace.bits.length, trace.rows * trace.rowBytes);
    const perLayer = counts.widths.reduce((a, b) => a + b, 0);
    assert.equal(counts.counts.length, nLayer * perLayer);
    for (let site = 0; site < SITES.length; site++) {
      let sum = 0;
      for (let layer = 0; layer < nLayer; layer++) {
        const base = layer * perLayer + counts.widths.slice(0, site).reduce((a, b) => a + b, 0);
        for (let j = 0; j < counts.widths[site]!; j++) {
          let ones = 0;
          for (let r = 0; r < trace.rows; r++) ones += bit(trace, r, layer, site, j) ? 1 : 0;
          assert.equal(counts.counts[base + j], ones, `layer ${layer} ${SITES[site]} channel ${j}`);
          sum += ones;
        }
      }
      assert.equal(sum, kept.kept[site], `${SITES[site]}: trace ones vs the engine's kept count`);
      assert.ok(sum > 0 && sum < kept.seen[site]!, `${SITES[site]}: ${sum} of ${kept.seen[site]} active, want some but not all`);
    }
    // Taken means moved out; clear drops counts.
    assert.equal(e.takeActivationTrace().rows, 0);
    e.setActivationCapture(false, false, true);
    assert.equal(e.activationCounts().rows, 0);
  } finally {
    await e.dispose();
  }
});

// Layer 0's attention input is rmsnorm(embedding row) * attn_norm: compute it from the F32 file.
async function layer0Input(path: string, id: number): Promise<Float32Array> {
  const f = await readGguf(path);
  const n = f.tensors.find((t) => t.name === "token_embd.weight")!;
  const w = f.tensors.find((t) => t.name === "blk.0.attn_norm.weight")!;
  const dim = n.dims[0]!;
  const fh = await open(path, "r");
  try {
    const row = Buffer.alloc(dim * 4), norm = Buffer.alloc(dim * 4);
    await fh.read(row, 0, dim * 4, f.dataOffset + n.offset + id * dim * 4);
    await fh.read(norm, 0, dim * 4, f.dataOffset + w.offset);
    const x = new Float32Array(row.buffer, row.byteOffset, dim), g = new Float32Array(norm.buffer, norm.byteOffset, dim);
    let ss = 0;
    for (const v of x) ss += v * v;
    const inv = 1 / Math.sqrt(ss / dim + 1e-5);
    return x.map((v, i) => v * inv * g[i]!);
  } finally {
    await fh.close();
  }
}

test("layer 0's attention input: a channel is traced active exactly when |x| > its threshold", async () => {
  const e = await Engine.load(model, { contextLength: 256 });
  try {
    const ids = [11, 200, 377];
    // The threshold at the median |x| of these rows, so about half the channels are active.
    const xs = await Promise.all(ids.map((id) => layer0Input(model, id)));
    const mags = xs.flatMap((x) => [...x].map(Math.abs)).sort((a, b) => a - b);
    const thr = mags[Math.floor(mags.length / 2)]!;
    e.setThresholds(thresholdsOf(e, thr));
    e.setActivationCapture(false, true, true);
    await e.evaluateLogits(ids);
    const trace = e.takeActivationTrace();
    let active = 0;
    for (const [r, x] of xs.entries()) {
      for (let j = 0; j < x.length; j++) {
        const a = Math.abs(x[j]!);
        if (Math.abs(a - thr) < 1e-5 * thr) continue; // float rounding may fall either side
        assert.equal(bit(trace, r, 0, 0, j), a > thr, `row ${r} channel ${j}: |x| ${a} vs ${thr}`);
        active += a > thr ? 1 : 0;
      }
    }
    assert.ok(active > 0.4 * xs.length * xs[0]!.length && active < 0.6 * xs.length * xs[0]!.length, `${active} active`);
  } finally {
    await e.dispose();
  }
});

test("dense: every channel is active; histograms are the same with counts and trace gathered beside them", async () => {
  const e = await Engine.load(model, { contextLength: 256 });
  try {
    e.setCapture(true, true);
    await e.evaluateLogits(IDS);
    const alone = e.histograms().counts.slice();
    e.setCapture(true, true);
    e.setActivationCapture(true, true, true);
    await e.evaluateLogits(IDS);
    assert.deepEqual(e.histograms().counts, alone);
    e.setCapture(false);
    const trace = e.takeActivationTrace();
    assert.equal(trace.rows, IDS.length);
    assert.ok(trace.bits.every((b) => b === 0xff), "every channel of every site active when dense");
    assert.ok(e.activationCounts().counts.every((c) => c === IDS.length));
  } finally {
    await e.dispose();
  }
});

test("setActivationCapture refuses arguments that are not booleans", async () => {
  const e = await Engine.load(model, { contextLength: 256 });
  try {
    const inner = (e as unknown as { model: BackendModel }).model;
    assert.throws(
      () => inner.setActivationCapture(1 as unknown as boolean, true),
      (err: unknown) => isActiveflowError(err) && err.code === "BAD_ARGUMENT" && /setActivationCapture\(counts: boolean, trace: boolean/.test(err.message),
    );
  } finally {
    await e.dispose();
  }
});
