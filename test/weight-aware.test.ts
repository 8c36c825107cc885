// Weight-aware selection (issue 13): the column norms equal a direct computation from the
// dequantised weights; the rule |x_j| x norm_j > t is applied alike by the dense engine, the
// flash column store and the predictor (identical tokens, and uniform norms c with thresholds
// x c select exactly what magnitude does, predictions and histograms included); tables carry
// their rule and norms through JSON and a flash header plus its sidecar, a table without a
// rule is magnitude; calibrate --selection rejects a bad value in one line.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { closeSync, openSync, readSync } from "node:fs";
import { copyFile, mkdtemp, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SITES } from "../src/backend/Backend.js";
import { loadAddon } from "../src/backends/native/binding.js";
import { main } from "../src/cli/main.js";
import { Engine } from "../src/index.js";
import { isActiveflowError } from "../src/errors.js";
import { SITE_TENSORS } from "../src/flash/format.js";
import { convertToFlash } from "../src/flash/convert.js";
import { readGguf } from "../src/gguf/reader.js";
import { GgmlType } from "../src/gguf/types.js";
import { readModelConfig } from "../src/model/config.js";
import { calibrate } from "../src/sparsity/calibrate.js";
import { computeColumnNorms, siteWidths } from "../src/sparsity/columnNorms.js";
import { THRESHOLD_KEY } from "../src/sparsity/flashKeys.js";
import { calibrationPath, loadCalibration, saveCalibration, storeCalibration } from "../src/sparsity/store.js";
import { selectionOf, tableFromJson, tableToJson, thresholdsFor, type ThresholdTable } from "../src/sparsity/thresholds.js";
import { synthesizeModel } from "../src/synth/synth.js";
import { captureContext } from "./helpers/cli.js";
import { greedy } from "./helpers/engine.js";
import { defaultBackend } from "../src/backends/default.js";

const CTX = 128;
const TEXT = "A small model reads the columns it needs from flash, and skips the rest of them. ".repeat(10);
let dir = "";
let gguf = ""; // F32 "small": dense and flash compute the same sums
let flash = "";
let weight: ThresholdTable;
let magnitude: ThresholdTable;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "af-weight-aware-"));
  gguf = join(dir, "small.gguf");
  await synthesizeModel("small", GgmlType.F32, gguf, { seed: 6 });
  flash = join(dir, "small.g1.af.gguf");
  await convertToFlash(defaultBackend(), gguf, flash, { groupSize: 1 });
  const e = await Engine.load(gguf, { contextLength: CTX });
  try {
    weight = await calibrate(e, { text: TEXT, selection: "weight" });
    magnitude = await calibrate(e, { text: TEXT, selection: "magnitude" });
  } finally {
    await e.dispose();
  }
  await saveCalibration(gguf, weight);
  await saveCalibration(flash, weight);
});

after(async () => {
  if (dir !== "") await rm(dir, { recursive: true, force: true });
});

// The table as written before weight-aware selection: no rule, no norms.
function legacy(t: ThresholdTable): ThresholdTable {
  const { selection: _s, columnNorms: _n, ...rest } = t;
  return rest;
}

// sqrt(sum over the site's tensors and rows of w^2), each row dequantised on its own, in f64.
async function directNorms(path: string): Promise<Float64Array> {
  const f = await readGguf(path);
  const c = readModelConfig(f);
  const widths = siteWidths(c);
  const addon = loadAddon();
  const out: number[] = [];
  const fd = openSync(path, "r");
  try {
    for (let l = 0; l < c.nLayer; l++) {
      SITES.forEach((site, s) => {
        const sums = new Float64Array(widths[s]!);
        for (const name of SITE_TENSORS[site]) {
          const t = f.tensors.find((x) => x.name === `blk.${l}.${name}.weight`)!;
          const rows = t.dims[1]!, rowBytes = t.bytes / rows;
          const buf = Buffer.alloc(rowBytes);
          for (let r = 0; r < rows; r++) {
            assert.equal(readSync(fd, buf, 0, rowBytes, f.dataOffset + t.offset + r * rowBytes), rowBytes);
            const row = addon.dequantizeRow(t.type, buf, t.dims[0]!);
            for (let j = 0; j < row.length; j++) sums[j]! += row[j]! * row[j]!;
          }
        }
        for (const v of sums) out.push(Math.sqrt(v));
      });
    }
  } finally {
    closeSync(fd);
  }
  return Float64Array.from(out);
}

test("column norms equal a direct float computation from the dequantised weights (F32 and Q4_0)", async () => {
  const q4 = join(dir, "tiny-q4_0.gguf");
  await synthesizeModel("tiny", GgmlType.Q4_0, q4, { seed: 3 });
  for (const path of [gguf, q4]) {
    const got = await computeColumnNorms(defaultBackend(), path);
    const want = await directNorms(path);
    assert.equal(got.length, want.length);
    for (let i = 0; i < want.length; i++) {
      assert.ok(Math.abs(got[i]! - want[i]!) <= 1e-6 * want[i]!, `${path} norm ${i}: ${got[i]} vs ${want[i]}`);
    }
    assert.ok(want.every((x) => x > 0));
  }
  // The table calibrate() wrote holds the same norms.
  const direct = await directNorms(gguf);
  assert.equal(weight.columnNorms!.length, direct.length);
  for (let i = 0; i < direct.length; i++) assert.ok(Math.abs(weight.columnNorms![i]! - direct[i]!) <= 1e-6 * direct[i]!);
});

// Tokens, logits and kept counts of a few greedy continuations at sparsity s.
async function runAt(path: string, s: number, options: Record<string, unknown> = {}) {
  const e = await Engine.load(path, { contextLength: CTX, sparsity: s, ...options });
  try {
    const ids: number[][] = [];
    for (const prompt of [[1, 17, 300, 42, 99, 7], [256, 3, 3, 3, 511, 128]]) ids.push((await greedy(e, prompt, 12)).ids);
    // Kept / seen per site over one teacher-forced pass of the calibration text.
    e.siteCounts(true);
    await e.evaluateLogits(e.tokenizer.encode(TEXT).slice(0, CTX));
    return { ids, counts: e.siteCounts(true) };
  } finally {
    await e.dispose();
  }
}

test("dense and flash modes keep the same inputs and give the same tokens under weight-aware thresholds", async () => {
  const dense = await runAt(gguf, 0.5);
  const fl = await runAt(flash, 0.5);
  assert.deepEqual(fl.ids, dense.ids);
  // attn_in of layer 0 sees identical inputs; after the first matrix product the two modes sum
  // in different orders, so an input lying on a threshold may fall either side: a few in 10^4.
  assert.deepEqual(fl.counts.seen, dense.counts.seen);
  assert.equal(fl.counts.kept[0], dense.counts.kept[0]);
  for (let s = 1; s < SITES.length; s++) assert.ok(Math.abs(fl.counts.kept[s]! - dense.counts.kept[s]!) <= 1e-3 * dense.counts.kept[s]!, `site ${SITES[s]}`);
  // Under a budget, with preloading (the predictor's scores): the same tokens.
  const probe = await Engine.load(flash, { contextLength: CTX });
  const minimum = probe.plan!.minimumBytes;
  await probe.dispose();
  const budget = await runAt(flash, 0.5, { dram: minimum + (1 << 20), preload: true });
  assert.deepEqual(budget.ids, dense.ids);
  // And the rule is not magnitude's: the same thresholds on |x| alone keep other inputs.
  const e = await Engine.load(gguf, { contextLength: CTX });
  try {
    const ids = e.tokenizer.encode(TEXT);
    const kept = async (norms: Float32Array | null) => {
      e.setColumnNorms(norms);
      e.setThresholds(thresholdsFor(weight, 0.5));
      e.siteCounts(true);
      await e.evaluateLogits(ids.slice(0, CTX));
      return e.siteCounts(true).kept;
    };
    const withNorms = await kept(weight.columnNorms!);
    assert.notDeepEqual(await kept(null), withNorms);
    // Calibrated on its own score, attn_in (a normed input, the same for every threshold set
    // upstream only through earlier layers) keeps about half at 0.5 on the calibration text.
    e.setColumnNorms(weight.columnNorms!);
    e.setThresholds(thresholdsFor(weight, 0.5));
    e.siteCounts(true);
    await e.evaluateLogits(ids.slice(0, CTX));
    const c = e.siteCounts(true);
    assert.ok(Math.abs(c.kept[0]! / c.seen[0]! - 0.5) < 0.1, `attn_in kept ${c.kept[0]! / c.seen[0]!}`);
  } finally {
    await e.dispose();
  }
});

test("uniform norms c with thresholds x c select what magnitude selects: tokens, histograms and predictions", async () => {
  const c = 4; // a power of two: |x| x c and t x c are exact
  const n = weight.columnNorms!.length;
  const scaled = thresholdsFor(magnitude, 0.5).map((t) => t * c);
  const probe = await Engine.load(flash, { contextLength: CTX });
  const dram = probe.plan!.minimumBytes + (1 << 20);
  await probe.dispose();
  const run = async (norms: Float32Array | null, th: Float32Array) => {
    const e = await Engine.load(flash, { contextLength: CTX, dram, preload: true });
    try {
      e.setColumnNorms(norms);
      e.setThresholds(th);
      e.setCapture(true, true);
      e.flashStats(true);
      const r = await greedy(e, [1, 17, 300, 42, 99, 7], 10);
      e.setCapture(false);
      return { ids: r.ids, prediction: r.stats.flash!.preload!.prediction, hist: e.histograms() };
    } finally {
      await e.dispose();
    }
  };
  const mag = await run(null, thresholdsFor(magnitude, 0.5));
  const wa = await run(new Float32Array(n).fill(c), scaled);
  assert.deepEqual(wa.ids, mag.ids);
  assert.deepEqual(wa.prediction, mag.prediction, "the predictor scores with the column norms folded in");
  // Histograms are of the score: x c = 2 octaves = 2 x perOctave bins higher (bin 0 holds zeros).
  const shift = 2 * mag.hist.perOctave, bins = mag.hist.bins;
  for (let base = 0; base < mag.hist.counts.length; base += bins) {
    assert.equal(wa.hist.counts[base]!, mag.hist.counts[base]!, "exact zeros stay in bin 0");
    for (let b = 1; b + shift < bins; b++) assert.equal(wa.hist.counts[base + b + shift]!, mag.hist.counts[base + b]!);
  }
});

test("tables carry their rule: without one they are magnitude; weight tables keep their norms in JSON and beside a flash header", async () => {
  // A table written before weight-aware selection (no selection, no norms) loads as magnitude.
  const old = tableToJson(legacy(magnitude)) as Record<string, unknown>;
  assert.equal("selection" in old, false);
  const back = tableFromJson(old, "old.json");
  assert.equal(back.selection, undefined);
  assert.equal(selectionOf(back), "magnitude");
  assert.equal(back.columnNorms, undefined);
  const w = tableFromJson(JSON.parse(JSON.stringify(tableToJson(weight))), "w.json");
  assert.equal(w.selection, "weight");
  assert.deepEqual(w.columnNorms, weight.columnNorms);
  // A weight table without its norms, or an unknown rule, is refused naming the file.
  const j = tableToJson(weight) as Record<string, unknown>;
  assert.throws(() => tableFromJson({ ...j, columnNorms: undefined }, "w.json"), (e: unknown) => isActiveflowError(e) && /w\.json: selection "weight" needs the column norms/.test(e.message));
  assert.throws(() => tableFromJson({ ...j, selection: "size" }, "w.json"), (e: unknown) => isActiveflowError(e) && /selection must be one of weight, magnitude/.test(e.message));
  // The engine loads a magnitude sidecar without norms and runs it.
  const plain = join(dir, "plain.gguf");
  await copyFile(gguf, plain);
  await saveCalibration(plain, legacy(magnitude));
  assert.equal((await runAt(plain, 0.5)).ids.length, 2);
  // A flash file: thresholds and rule in the header, the norms in the sidecar.
  const f = join(dir, "stored.af.gguf");
  await copyFile(flash, f);
  await unlink(calibrationPath(f)).catch(() => {});
  assert.equal(await storeCalibration(f, weight), f);
  assert.equal((await readGguf(f)).metadata.get(THRESHOLD_KEY.selection), "weight");
  const loaded = await loadCalibration(f);
  assert.equal(loaded!.selection, "weight");
  assert.deepEqual(loaded!.columnNorms, weight.columnNorms);
  assert.deepEqual(loaded!.thresholds, weight.thresholds);
  await unlink(calibrationPath(f));
  await assert.rejects(loadCalibration(f), (e: unknown) => isActiveflowError(e) && e.message.includes(calibrationPath(f)) && /column norms/.test(e.message));
  // Recalibrated to magnitude: the header says so, and no sidecar is needed.
  await storeCalibration(f, magnitude);
  assert.equal((await loadCalibration(f))!.selection, "magnitude");
});

test("activeflow eval applies a weight-aware table's rule: its kept fractions are the engine's with the norms", async () => {
  const file = join(dir, "eval.txt");
  await writeFile(file, TEXT);
  const h = captureContext();
  assert.equal(await main(["eval", gguf, "--text", file, "--sparsity", "0.5", "--window", String(CTX), "--max-tokens", String(CTX), "--json"], h.ctx), 0, h.err());
  const j = JSON.parse(h.out().trim()) as { active_fraction: Record<string, number> };
  const e = await Engine.load(gguf, { contextLength: CTX });
  try {
    const ids = e.tokenizer.encode(TEXT).slice(0, CTX);
    const fractions = async (norms: Float32Array | null) => {
      e.setColumnNorms(norms);
      e.setThresholds(thresholdsFor(weight, 0.5));
      e.siteCounts(true);
      await e.evaluateLogits(ids);
      const c = e.siteCounts(true);
      return c.kept.map((k, s) => k / c.seen[s]!);
    };
    const withNorms = await fractions(weight.columnNorms!);
    assert.equal(j.active_fraction.q, withNorms[0]);
    assert.equal(j.active_fraction.down, withNorms[3]);
    assert.notEqual(j.active_fraction.q, (await fractions(null))[0], "the magnitude rule would keep another set");
  } finally {
    await e.dispose();
  }
});

test("calibrate --selection: a bad value is one line; weight on a converted file points at its source", async () => {
  const h = captureContext();
  assert.equal(await main(["calibrate", gguf, "--selection", "size"], h.ctx), 2);
  assert.match(h.err(), /^error: invalid value for --selection: "size" \(expected one of weight, magnitude\)/);
  assert.equal(h.err().trim().split("\n")[0]!.length > 0, true);
  const e = await Engine.load(flash, { contextLength: CTX });
  try {
    await assert.rejects(calibrate(e, { text: TEXT, selection: "weight" }), (x: unknown) => isActiveflowError(x) && /calibrate the GGUF the file was converted from/.test(x.message));
  } finally {
    await e.dispose();
  }
});
