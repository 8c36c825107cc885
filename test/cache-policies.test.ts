// The cache simulator's pieces (bench/lib): its replay of today's LFU gives the engine's own hit
// and lookup counts on a trace recorded under a budget; its read planner issues the reads
// native PlanReads issues; the policies keep their defining properties (LRU order, pinning
// inside a visit, ARC's resistance to a one-time scan, a static set never changes).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SITES } from "../src/backend/Backend.js";
import { loadAddon } from "../src/backends/native/binding.js";
import { Engine } from "../src/index.js";
import { convertToFlash } from "../src/flash/convert.js";
import { GgmlType } from "../src/gguf/types.js";
import { thresholdsAt } from "../src/sparsity/thresholds.js";
import { synthesizeModel } from "../src/synth/synth.js";
import { Arc, DecayLfu, EngineLfu, Lru, StaticSet, type ExtentPolicy } from "../bench/lib/cachePolicies.js";
import { simulate, type PolicySpec } from "../bench/lib/cacheReplay.js";
import { planReads } from "../bench/lib/layouts.js";
import { TRACE_VERSION, TraceBuilder, type Trace } from "../bench/lib/traceFile.js";
import { defaultBackend } from "../src/backends/default.js";

let dir = "";
let flashPath = "";

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "af-cachepol-"));
  const src = join(dir, "small.gguf");
  await synthesizeModel("small", GgmlType.Q8_0, src, { seed: 11 });
  flashPath = join(dir, "small.af.gguf");
  await convertToFlash(defaultBackend(), src, flashPath, { groupSize: 1 });
});

after(async () => {
  if (dir !== "") await rm(dir, { recursive: true, force: true });
});

test("the replay of today's LFU gives the engine's hits and lookups exactly", async () => {
  const e = await Engine.load(flashPath, { contextLength: 128, dram: "1000%" });
  try {
    const ids = Array.from({ length: 60 }, (_, i) => 5 + ((i * 53) % 400));
    e.setCapture(true, true);
    await e.evaluateLogits(ids);
    e.setCapture(false);
    e.setThresholds(thresholdsAt(e.histograms(), new Float32Array(e.config.nLayer * SITES.length).fill(0.5)));
    const flash = e.flash!;
    const extentBytes = flash.extents.reduce((a, x) => a + x.bytes, 0);
    // A cache of a quarter of every extent (set on the backend: the budget's minimum includes a
    // head staging area larger than this model).
    const model = (e as unknown as { model: { setCacheBytes(b: number): void; flashStats(): { lookups?: number; hits?: number; cacheBytes?: number; cacheSlots?: Int32Array } } }).model;
    model.setCacheBytes(Math.floor(0.25 * extentBytes));
    const cacheBytes = model.flashStats().cacheBytes!;
    assert.equal(cacheBytes, Math.floor(0.25 * extentBytes));
    e.setActivationCapture(false, true, true);
    const gen = e.generate([1, 7, 9, 30, 2], { maxTokens: 40, greedy: true, stopAtEos: false });
    for (let r = await gen.next(); !r.done; r = await gen.next());
    const raw = model.flashStats();
    const b = new TraceBuilder();
    b.add(e.takeActivationTrace());
    const trace: Trace = {
      header: {
        version: TRACE_VERSION, use: "engine-check", model: flashPath, source: flashPath, columnTypes: [], sparsity: 0.5,
        calibration: { source: "test", tokens: 0 }, nLayer: b.nLayer, widths: b.widths, rowBytes: b.rowBytes, rows: b.rows, passes: b.passes,
        sequences: [{ name: "g", register: "test", mode: "greedy", firstRow: 0, rows: b.rows, firstPass: 0, passes: b.passes.length, promptTokens: 5, generatedTokens: 40, prefillRows: 5, freshContext: true }],
        createdAt: "", notes: [],
      },
      bits: b.bits(),
    };
    const extents = flash.extents.map((x) => ({ layer: x.firstLayer, site: SITES.indexOf(x.site), nIn: x.nIn, recordBytes: x.recordBytes }));
    // The engine's own split of the cache over extents (it follows the device's read costs).
    const slots = raw.cacheSlots!;
    const lfu: PolicySpec = { name: "lfu-engine", note: "", candidate: true, make: (x, c) => new EngineLfu(x.nIn, c), caps: () => slots };
    const [row] = simulate(trace, "passes", extents, [lfu], [cacheBytes / extentBytes], ["warm"]);
    assert.ok((raw.hits ?? 0) > 0 && (raw.hits ?? 0) < (raw.lookups ?? 0), `engine hits ${raw.hits} of ${raw.lookups}`);
    assert.equal(row!.allCounts.lookups, raw.lookups);
    assert.equal(row!.allCounts.hits, raw.hits);
  } finally {
    await e.dispose();
  }
});

test("planReads issues the reads native PlanReads issues", () => {
  const addon = loadAddon();
  let seed = 5;
  const next = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296);
  for (const recordBytes of [612, 1020, 3264, 288]) {
    for (const gap of [-1, 0, 4096, 16384, 65536]) {
      for (let trial = 0; trial < 20; trial++) {
        const n = 400;
        const chosen: number[] = [];
        for (let j = 0; j < n; j++) if (next() < 0.1 + 0.8 * (trial / 20)) chosen.push(j);
        const pos = Int32Array.from(chosen);
        const mine = planReads(pos, pos.length, recordBytes, gap, 256 << 10);
        const native = addon.planFlashReads(Float64Array.from(chosen, (j) => j * recordBytes), Uint32Array.from(chosen, () => recordBytes), gap, 256 << 10, n * recordBytes + 8192);
        assert.equal(mine.reads, native.lengths.length, `records ${recordBytes} gap ${gap} trial ${trial}: reads`);
        assert.equal(mine.bytes, native.lengths.reduce((a, b) => a + b, 0), `records ${recordBytes} gap ${gap} trial ${trial}: bytes`);
      }
    }
  }
});

// Runs visits (arrays of channels) through a policy, returning hits per visit.
function run(p: ExtentPolicy, visits: number[][]): number[] {
  const miss = new Int32Array(64);
  return visits.map((v) => p.visit(Int32Array.from([...v].sort((a, b) => a - b)), v.length, 1, miss));
}

test("LRU evicts the least recent channel; a visit's hits are pinned while it runs", () => {
  assert.deepEqual(run(new Lru(8, 2), [[0], [1], [0], [2], [0], [1]]), [0, 0, 1, 0, 1, 0]); // 2 evicts 1, not 0
  // Two slots hold 0 and 1; a visit of {0, 1, 2} hits both and cannot evict them for 2.
  assert.deepEqual(run(new Lru(8, 2), [[0, 1], [0, 1, 2], [0, 1]]), [0, 2, 2]);
});

test("today's LFU admits a newcomer only over a colder channel, and restarts counts per sequence", () => {
  const p = new EngineLfu(8, 1);
  // 0 used twice; 1 (count 1) cannot replace it, 1 again (count 2) still cannot, a third time can.
  assert.deepEqual(run(p, [[0], [0], [1], [1], [1], [1]]), [0, 1, 0, 0, 0, 1]);
  p.startSequence();
  assert.deepEqual(run(p, [[2], [1]]), [0, 0]); // after the restart 2 (count 1) replaces 1 (count 0)
});

test("LFU with decay forgets: an old favourite loses its slot to a recent channel", () => {
  const visits = [...Array.from({ length: 10 }, () => [0]), ...Array.from({ length: 40 }, () => [1])];
  const forever = run(new DecayLfu(4, 1, Infinity), visits);
  const decayed = run(new DecayLfu(4, 1, 4), visits);
  // Without decay 1 needs 11 uses to pass 0; with a 4-token half-life it takes over after a few.
  assert.equal(forever.slice(10).filter((h) => h === 1).length, 40 - 11);
  assert.ok(decayed.slice(10).filter((h) => h === 1).length >= 40 - 4, `${decayed.slice(10).join("")}`);
});

test("ARC keeps a frequently used set through a one-time scan that flushes LRU", () => {
  const hot = [[0, 1], [0, 1], [0, 1]];
  const scan = Array.from({ length: 6 }, (_, i) => [10 + i]);
  const visits = [...hot, ...scan, [0, 1]];
  assert.equal(run(new Lru(32, 3), visits).at(-1), 0);
  assert.equal(run(new Arc(32, 3), visits).at(-1), 2);
});

test("a static set serves exactly its channels and never changes", () => {
  const p = new StaticSet(8, 2, Int32Array.from([5, 3, 1, 0]));
  assert.deepEqual(run(p, [[5], [3, 5], [1], [1], [0, 3]]), [1, 2, 0, 0, 1]);
});
