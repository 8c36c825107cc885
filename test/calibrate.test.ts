// Calibration: thresholds from histograms keep the requested fraction, calibrate() on a small
// model gives thresholds that grow with sparsity and keep about 1 - s of each site's inputs on
// its own text (every site, for the matched method), the greedy allocation keeps the byte-
// weighted mean and spares sensitive sites, tables round-trip through a flash file's header
// keys (a plain GGUF keeps its sidecar), bad keys are named, and the CLI refuses to calibrate
// on the evaluation text.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, open, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SITES, type SiteHistograms } from "../src/backend/Backend.js";
import { main } from "../src/cli/main.js";
import { refuseEvaluationText } from "../src/cli/commands/calibrate.js";
import { Engine } from "../src/index.js";
import { isActiveflowError } from "../src/errors.js";
import { GgmlType } from "../src/gguf/types.js";
import { convertToFlash } from "../src/flash/convert.js";
import { updateFlashMetadata } from "../src/flash/metadata.js";
import { openFlashModel, verifyFlashFile } from "../src/flash/open.js";
import { readGguf } from "../src/gguf/reader.js";
import { f32Arr, str, u32 } from "../src/gguf/writer.js";
import { allocateGreedy, meanSparsity } from "../src/sparsity/allocate.js";
import { calibrate } from "../src/sparsity/calibrate.js";
import { DEFAULT_SELECTION } from "../src/sparsity/selection.js";
import { THRESHOLD_KEY } from "../src/sparsity/flashKeys.js";
import { calibrationPath, loadCalibration, saveCalibration, storeCalibration } from "../src/sparsity/store.js";
import { MIN_CALIBRATION_TOKENS, SPARSITY_LEVELS, tableFromJson, tableToJson, thresholdsFor, thresholdsFromHistograms, type ThresholdTable } from "../src/sparsity/thresholds.js";
import { synthesizeModel } from "../src/synth/synth.js";
import { rng } from "./helpers/random.js";
import { captureContext } from "./helpers/cli.js";
import { defaultBackend } from "../src/backends/default.js";

// The native histogram's binning (native/model/activation_stats.h): log2-spaced from 2^-24, 32 per octave.
const PER_OCTAVE = 32, MIN_LOG2 = -24, BINS = 32 * 40;

function binOf(a: number): number {
  if (!(a > 0)) return 0;
  return Math.min(Math.max(Math.floor((Math.log2(a) - MIN_LOG2) * PER_OCTAVE), 0), BINS - 1);
}

test("thresholds from a synthetic histogram keep the requested fraction of samples", () => {
  const next = rng(1);
  const N = 200_000;
  // One layer, four sites with different |x| distributions: Gaussian, Laplace-like, wide
  // log-uniform, and one with 5 % exact zeros (ReLU-like gaps).
  const samples: Float64Array[] = SITES.map(() => new Float64Array(N));
  for (let i = 0; i < N; i++) {
    const u = next() || 1e-12, v = next();
    samples[0]![i] = Math.abs(Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v));
    samples[1]![i] = -Math.log(next() || 1e-12) * 0.05;
    samples[2]![i] = 2 ** (-12 + 16 * next());
    samples[3]![i] = next() < 0.05 ? 0 : next() * 3;
  }
  const counts = new Float64Array(SITES.length * BINS);
  samples.forEach((xs, s) => xs.forEach((a) => counts[s * BINS + binOf(a)]!++));
  const h: SiteHistograms = { counts, bins: BINS, perOctave: PER_OCTAVE, minLog2: MIN_LOG2 };
  const table = thresholdsFromHistograms(h, 1, SPARSITY_LEVELS, N, "synthetic");
  const keptFraction = (xs: Float64Array, t: number) => xs.reduce((n, a) => n + (a > t ? 1 : 0), 0) / xs.length;
  for (const [li, s] of SPARSITY_LEVELS.entries()) {
    for (let site = 0; site < SITES.length; site++) {
      const kept = keptFraction(samples[site]!, table.thresholds[li]![site]!);
      // One bin holds at most ~1 % of these distributions' mass, and the quantile is
      // interpolated inside it, so the kept fraction is off by far less than a bin.
      assert.ok(Math.abs(kept - (1 - s)) < 0.005, `site ${SITES[site]} at s=${s}: kept ${kept}`);
    }
  }
  // Between table levels, thresholdsFor interpolates: still close to 1 - s.
  for (const s of [0.05, 0.45, 0.85]) {
    const t = thresholdsFor(table, s);
    for (let site = 0; site < SITES.length; site++) {
      const kept = keptFraction(samples[site]!, t[site]!);
      assert.ok(Math.abs(kept - (1 - s)) < 0.03, `site ${SITES[site]} at interpolated s=${s}: kept ${kept}`);
    }
  }
  // s = 0 keeps everything, exact zeros included.
  assert.equal(keptFraction(samples[3]!, table.thresholds[0]![3]!), 1);
});

// ---- on a small random-weight model ----

let dir = "";
let model = "";
// Calibration text: plain English, repeated enough to fill a few hundred tokens.
const TEXT = [
  "Rivers carry sediment from the mountains to the sea, building deltas over thousands of years.",
  "The committee met on Tuesday to discuss the budget, but no decision was reached.",
  "She opened the window, and the smell of rain filled the small kitchen.",
  "Prime numbers have exactly two divisors: one and the number itself.",
].join(" ").repeat(3);
let table: ThresholdTable;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "af-calibrate-"));
  model = join(dir, "small.gguf");
  await synthesizeModel("small", GgmlType.F32, model, { seed: 4 });
  const e = await Engine.load(model, { contextLength: 512 });
  try {
    table = await calibrate(e, { text: TEXT });
  } finally {
    await e.dispose();
  }
});

after(async () => {
  if (dir !== "") await rm(dir, { recursive: true, force: true });
});

test("calibrate() on a small model: thresholds grow with the sparsity level at every layer and site", () => {
  assert.deepEqual(table.levels, [...SPARSITY_LEVELS]);
  assert.equal(table.nLayer, 2);
  assert.ok(table.calibrationTokens > 100, `${table.calibrationTokens} tokens`);
  for (let i = 0; i < table.nLayer * SITES.length; i++) {
    const col = table.thresholds.map((t) => t[i]!);
    for (let l = 1; l < col.length; l++) {
      assert.ok(col[l]! > col[l - 1]!, `layer ${Math.floor(i / 4)} site ${SITES[i % 4]}: level ${table.levels[l]} threshold ${col[l]} <= ${col[l - 1]}`);
    }
  }
});

// Kept / seen per site over the calibration text, evaluated in calibrate's 512-token windows.
async function keptFractions(e: Engine, ids: readonly number[], thresholds: Float32Array): Promise<number[]> {
  e.setThresholds(thresholds);
  e.siteCounts(true);
  for (let i = 0; i < ids.length; i += 512) await e.evaluateLogits(ids.slice(i, i + 512));
  const c = e.siteCounts(true);
  return SITES.map((_, site) => c.kept[site]! / c.seen[site]!);
}

test("at sparsity s each site keeps 1 - s of its inputs on the calibration text", async () => {
  const e = await Engine.load(model, { contextLength: 512 });
  try {
    const ids = e.tokenizer.encode(TEXT).slice(0, 4096);
    for (const s of [0.3, 0.5, 0.7]) {
      const all = thresholdsFor(table, s);
      // One (layer, site) sparse at a time: its inputs are exactly the dense ones the
      // histograms saw, so it keeps 1 - s up to the histogram's bin resolution. The other
      // layers keep everything (threshold -1), so the site's count over all layers is
      // (kept_l + (nLayer - 1) * perLayer) / (nLayer * perLayer).
      for (let layer = 0; layer < table.nLayer; layer++) {
        for (let site = 0; site < SITES.length; site++) {
          const at = layer * SITES.length + site;
          const only = all.map((t, i) => (i === at ? t : -1));
          const whole = (await keptFractions(e, ids, only))[site]!;
          const kept = whole * table.nLayer - (table.nLayer - 1);
          assert.ok(Math.abs(kept - (1 - s)) < 0.01, `layer ${layer} site ${SITES[site]} alone at s=${s}: kept ${kept.toFixed(4)}`);
        }
      }
      // Every site sparse: the normalised inputs (attn_in, ffn_in) still keep ~1 - s. The
      // outputs of sparse projections (attn_out, ffn_out inputs) shrink, so they keep less
      // (measured on this model at s = 0.7: attn_out 0.18, ffn_out 0.25); only a bound here.
      const kept = await keptFractions(e, ids, all);
      for (const site of [0, 2]) assert.ok(Math.abs(kept[site]! - (1 - s)) < 0.02, `site ${SITES[site]} at s=${s}: kept ${kept[site]!.toFixed(4)}`);
      for (const site of [1, 3]) assert.ok(kept[site]! <= 1 - s + 0.02, `site ${SITES[site]} at s=${s}: kept ${kept[site]!.toFixed(4)}`);
    }
  } finally {
    await e.dispose();
  }
});

// ---- the CLI ----

const cli = () => captureContext({ loadEngine: async () => assert.fail("calibrate loads its own engine") });

test("calibrate refuses the evaluation text wiki.test.raw, before loading anything", async () => {
  const evalText = join(dir, "wiki.test.raw");
  await writeFile(evalText, TEXT);
  assert.throws(() => refuseEvaluationText(evalText), (e: unknown) => isActiveflowError(e) && /is the evaluation text/.test(e.message));
  assert.doesNotThrow(() => refuseEvaluationText(join(dir, "wiki.train.raw")));
  const h = cli();
  assert.equal(await main(["calibrate", model, "--text", evalText], h.ctx), 1);
  assert.equal(h.err(), `error: calibrate: ${evalText} is the evaluation text; calibration text must be disjoint from it (use another text file, or no --text for self-generated text)\n`);
  assert.equal(await loadCalibration(model), undefined, "nothing was saved");
});

test("calibrate --text refuses an empty file and one too short to calibrate on, in one line naming the file", async () => {
  const cases: [string, string, RegExp][] = [
    ["empty.txt", "", /^error: text file \S+empty\.txt is empty\n$/],
    ["blank.txt", " \n\n\t\n", /^error: text file \S+blank\.txt is empty \(only whitespace\)\n$/],
    ["short.txt", "Rivers.", new RegExp(`^error: text file \\S+short\\.txt is too short to calibrate on: \\d+ tokens?, at least ${MIN_CALIBRATION_TOKENS} needed\\n$`)],
  ];
  for (const [name, body, expected] of cases) {
    const file = join(dir, name);
    await writeFile(file, body);
    const h = cli();
    assert.equal(await main(["calibrate", model, "--text", file], h.ctx), 1, name);
    assert.match(h.err(), expected);
    assert.ok(h.err().includes(file), `${name}: the message names the file`);
    assert.equal(h.out(), "");
    assert.equal(await loadCalibration(model), undefined, `${name}: nothing was saved`);
  }
});

test("activeflow calibrate --text saves the table beside the model and --json summarises it", async () => {
  const text = join(dir, "calib.txt");
  await writeFile(text, TEXT);
  const h = cli();
  assert.equal(await main(["calibrate", model, "--text", text, "--tokens", "200", "--json"], h.ctx), 0, h.err());
  const j = JSON.parse(h.out().trim()) as { paths: string[]; tokens: number; method: string; selection: string; levels: number[]; mean_thresholds: number[][] };
  assert.equal(j.paths[0], calibrationPath(model));
  assert.equal(j.method, "matched", "the CLI's default method");
  assert.equal(j.selection, DEFAULT_SELECTION, "the CLI's default selection");
  assert.equal(j.tokens, 200);
  assert.deepEqual(j.levels, [...SPARSITY_LEVELS]);
  const saved = await loadCalibration(model);
  assert.ok(saved !== undefined);
  assert.equal(saved.calibrationTokens, 200);
  // Without --json: a table of mean thresholds per level, then the saved path.
  const t = cli();
  assert.equal(await main(["calibrate", model, "--text", text, "--tokens", "200", "--method", "uniform"], t.ctx), 0, t.err());
  assert.match(t.out(), /^calibrated on 200 tokens \(user text, uniform, magnitude selection\); mean \|x\| threshold/);
  assert.match(t.out(), /\n\s+0\.50\s/);
  assert.ok(t.out().endsWith(`saved ${calibrationPath(model)}\n`));
});

// ---- methods: matched thresholds and the greedy allocation ----

test("matched: with every site sparse, every site (attn_out and ffn_out too) keeps about 1 - s", async () => {
  const e = await Engine.load(model, { contextLength: 512 });
  try {
    const matched = await calibrate(e, { text: TEXT, method: "matched", levels: [0, 0.5] });
    assert.equal(matched.method, "matched");
    assert.deepEqual(Array.from(matched.siteSparsity![1]!), new Array(table.nLayer * SITES.length).fill(0.5));
    const ids = e.tokenizer.encode(TEXT).slice(0, 4096);
    const kept = await keptFractions(e, ids, thresholdsFor(matched, 0.5));
    for (let site = 0; site < SITES.length; site++) assert.ok(Math.abs(kept[site]! - 0.5) < 0.02, `site ${SITES[site]}: kept ${kept[site]!.toFixed(4)}`);
    // The uniform table (dense quantiles) drops more than asked downstream, which is why.
    const uniformKept = await keptFractions(e, ids, thresholdsFor(table, 0.5));
    assert.ok(uniformKept[3]! < kept[3]!, `ffn_out uniform ${uniformKept[3]} vs matched ${kept[3]}`);
  } finally {
    await e.dispose();
  }
});

test("greedy allocation: the byte-weighted mean reaches each level and the sensitive site stays denser", () => {
  // Two layers, four sites, the same Gaussian-like |x| everywhere; layer 0's ffn_in is 20x
  // as sensitive as the rest and ffn_in carries the most bytes.
  const counts = new Float64Array(8 * BINS);
  const next = rng(3);
  for (let i = 0; i < 8; i++) {
    for (let k = 0; k < 20_000; k++) {
      const u = next() || 1e-12, v = next();
      counts[i * BINS + binOf(Math.abs(Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v)))]!++;
    }
  }
  const h: SiteHistograms = { counts, bins: BINS, perOctave: PER_OCTAVE, minLog2: MIN_LOG2 };
  const kl = new Float64Array(8).fill(0.01);
  kl[2] = 0.2;
  const bytes = Float64Array.from([1, 0.6, 3.2, 1.6, 1, 0.6, 3.2, 1.6]);
  const levels = [0, 0.3, 0.5, 0.7];
  const alloc = allocateGreedy(h, { probe: 0.5, kl, tokens: 100 }, bytes, levels);
  assert.equal(alloc.length, levels.length);
  assert.ok(alloc[0]!.every((x) => x === 0));
  for (const [i, s] of levels.entries()) {
    const m = meanSparsity(alloc[i]!, bytes);
    assert.ok(m >= s - 1e-9 && m < s + 0.02, `level ${s}: mean ${m}`);
    if (s > 0) assert.ok(alloc[i]![2]! < alloc[i]![6]!, `level ${s}: sensitive ffn_in ${alloc[i]![2]} vs ${alloc[i]![6]}`);
  }
  // Nested: raising the level never lowers a site's sparsity.
  for (let i = 1; i < levels.length; i++) for (let j = 0; j < 8; j++) assert.ok(alloc[i]![j]! >= alloc[i - 1]![j]!);
});

test("greedy calibrate() on a small model keeps the byte-weighted mean at each level", async () => {
  const e = await Engine.load(model, { contextLength: 512 });
  try {
    const g = await calibrate(e, { text: TEXT, method: "greedy", levels: [0, 0.5] });
    assert.equal(g.method, "greedy");
    const { siteWeightBytes } = await import("../src/sparsity/allocate.js");
    const m = meanSparsity(g.siteSparsity![1]!, await siteWeightBytes(e));
    assert.ok(m >= 0.5 && m < 0.52, `mean ${m}`);
    // The JSON form carries the allocation (and stays readable by older readers' fields).
    const j = tableToJson(g) as Record<string, unknown>;
    assert.equal(j.version, 1);
    assert.deepEqual(tableFromJson(JSON.parse(JSON.stringify(j)), "x").siteSparsity, g.siteSparsity);
  } finally {
    await e.dispose();
  }
});

// ---- where tables live: flash header keys, or the sidecar of a plain GGUF ----

const sameTable = (a: ThresholdTable, b: ThresholdTable) => {
  assert.deepEqual(a.levels, b.levels);
  assert.equal(a.nLayer, b.nLayer);
  assert.deepEqual(a.thresholds, b.thresholds);
  assert.equal(a.calibrationTokens, b.calibrationTokens);
  assert.equal(a.source, b.source);
  assert.equal(a.method, b.method);
  assert.deepEqual(a.siteSparsity, b.siteSparsity);
  // The measured quality per level (f32 in a flash header, so to f32's precision).
  assert.equal(a.quality === undefined, b.quality === undefined);
  if (a.quality && b.quality) {
    assert.equal(a.quality.tokens, b.quality.tokens);
    assert.deepEqual(Float32Array.from(a.quality.kl), Float32Array.from(b.quality.kl));
    assert.deepEqual(Float32Array.from(a.quality.top1), Float32Array.from(b.quality.top1));
  }
};

let flash = "";
async function flashFile(): Promise<string> {
  if (flash === "") {
    flash = join(dir, "small.af.gguf");
    await convertToFlash(defaultBackend(), model, flash, { groupSize: 1 });
  }
  return flash;
}

test("a flash file stores the table in its header keys, atomically, and reads it back", async () => {
  const f = await flashFile();
  const before = await openFlashModel(f);
  const size = (await stat(f)).size;
  const data = (await readFile(f)).subarray(before.gguf.dataOffset);
  // An open handle on the old file: the update must not write into it (a clone replaces it).
  const old = await open(f, "r");
  try {
    assert.equal(await storeCalibration(f, table), f);
    assert.equal((await readGguf(f)).metadata.has(THRESHOLD_KEY.version), true);
    const oldHeader = Buffer.alloc(before.gguf.dataOffset);
    await old.read(oldHeader, 0, oldHeader.length, 0);
    assert.equal(oldHeader.includes(THRESHOLD_KEY.version), false, "the old file was not written in place");
    assert.notEqual((await old.stat()).ino, (await stat(f)).ino, "a new file replaced it by rename");
  } finally {
    await old.close();
  }
  await assert.rejects(readFile(calibrationPath(f)), /ENOENT/, "no sidecar for a flash file");
  assert.deepEqual((await readdir(dir)).filter((n) => n.includes(".tmp")), [], "no temporary files left");
  const after = await openFlashModel(f);
  assert.equal(after.gguf.dataOffset, before.gguf.dataOffset);
  assert.equal((await stat(f)).size, size);
  assert.ok((await readFile(f)).subarray(after.gguf.dataOffset).equals(data));
  await verifyFlashFile(f);
  const back = await loadCalibration(f);
  assert.ok(back);
  sameTable(back, table);
  // The keys come before a sidecar: a stale sidecar beside the file is not read.
  await saveCalibration(f, { ...table, source: "stale sidecar" });
  assert.equal((await loadCalibration(f))!.source, table.source);
  // Recalibrating replaces the keys in place of the old ones.
  const again = { ...table, calibrationTokens: 7, method: "matched" };
  await storeCalibration(f, again);
  sameTable((await loadCalibration(f))!, again);
  // And the engine runs sparse from the file's own table.
  const e = await Engine.load(f, { contextLength: 64, sparsity: 0.5 });
  try {
    assert.equal(e.sparsity, 0.5);
  } finally {
    await e.dispose();
  }
});

test("a plain GGUF keeps its table in the sidecar and is never rewritten", async () => {
  const g = join(dir, "plain.gguf");
  await synthesizeModel("small", GgmlType.F32, g, { seed: 4 });
  const bytes = await readFile(g);
  assert.equal(await storeCalibration(g, table), calibrationPath(g));
  assert.ok((await readFile(g)).equals(bytes));
  sameTable((await loadCalibration(g))!, table);
});

test("bad threshold keys fail with the file and the key named", async () => {
  const f = await flashFile();
  await storeCalibration(f, table);
  const cases: [Map<string, ReturnType<typeof u32>>, RegExp][] = [
    [new Map([[THRESHOLD_KEY.nLayer, u32(3)]]), /activeflow\.thresholds\.n_layer is 3, but the model has 2 layers/],
    [new Map([[THRESHOLD_KEY.values, f32Arr(new Float32Array(5))]]), /activeflow\.thresholds\.values holds 5 numbers, expected 80/],
    [new Map([[THRESHOLD_KEY.values, str("oops")]]), /activeflow\.thresholds\.values must be an f32 array, found the string "oops"/],
    [new Map([[THRESHOLD_KEY.version, u32(9)]]), /activeflow\.thresholds\.version is 9; this build reads version 1/],
    [new Map([[THRESHOLD_KEY.levels, f32Arr([0.5, 0.3])]]), /activeflow\.thresholds\.levels must rise strictly/],
    [new Map([[THRESHOLD_KEY.top1, f32Arr(new Float32Array(10).fill(1.5))]]), /activeflow\.thresholds\.top1\[0\] must be a number in \[0, 1\], found 1\.5/],
    [new Map([[THRESHOLD_KEY.kl, f32Arr([0, 1])]]), /activeflow\.thresholds\.kl holds 2 numbers, expected 10/],
  ];
  for (const [entries, message] of cases) {
    await storeCalibration(f, table);
    await updateFlashMetadata(f, entries);
    await assert.rejects(loadCalibration(f), (e: unknown) => {
      assert.ok(isActiveflowError(e) && e.code === "BAD_ARGUMENT", String(e));
      assert.ok(e.message.startsWith(`${f}: metadata key `), e.message);
      assert.match(e.message, message);
      return true;
    });
    await assert.rejects(Engine.load(f, { contextLength: 64, sparsity: 0.5 }), message);
  }
  await storeCalibration(f, table);
  // A sidecar that is not JSON is named too.
  const g = join(dir, "bad-sidecar.gguf");
  await synthesizeModel("small", GgmlType.F32, g, { seed: 4 });
  await writeFile(calibrationPath(g), "{not json");
  await assert.rejects(loadCalibration(g), (e: unknown) => isActiveflowError(e) && e.message.startsWith(`${calibrationPath(g)}: not JSON`));
});

test("activeflow calibrate on a flash file writes its header keys", async () => {
  const f = await flashFile();
  const text = join(dir, "calib-flash.txt");
  await writeFile(text, TEXT);
  const h = cli();
  assert.equal(await main(["calibrate", f, "--text", text, "--tokens", "120", "--method", "matched", "--json"], h.ctx), 0, h.err());
  const j = JSON.parse(h.out().trim()) as { paths: string[]; method: string };
  assert.deepEqual(j.paths, [f]);
  assert.equal(j.method, "matched");
  const t = await loadCalibration(f);
  assert.equal(t!.calibrationTokens, 120);
  assert.equal(t!.method, "matched");
});
