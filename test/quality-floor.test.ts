// The tuner's quality floor (issue 13, item 3): calibrate stores each level's KL(dense || sparse)
// and top-1 agreement measured on its own text, exactly as eval measures them; sparsity "auto"
// with --max-kl / --min-top1 picks the highest level under the floor that the budget needs;
// tables made before the numbers still load but refuse a floor in one line; bad values are
// named. On a small random-weight model and made-up quality numbers, so every result is fixed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { SITES } from "../src/backend/Backend.js";
import { parseArgs, UsageError } from "../src/cli/args.js";
import { Engine } from "../src/index.js";
import { isActiveflowError } from "../src/errors.js";
import { evaluateQuality } from "../src/eval/quality.js";
import { convertToFlash } from "../src/flash/convert.js";
import { GgmlType } from "../src/gguf/types.js";
import { tune, type TuneInput } from "../src/pipeline/tuner.js";
import type { MachineProfile } from "../src/pipeline/profile.js";
import { calibrate, calibrationText } from "../src/sparsity/calibrate.js";
import type { LevelQuality } from "../src/sparsity/levelQuality.js";
import { floorLevel } from "../src/sparsity/qualityFloor.js";
import { calibrationPath, loadCalibration, saveCalibration, storeCalibration } from "../src/sparsity/store.js";
import { SPARSITY_LEVELS, tableFromJson, tableToJson, type ThresholdTable } from "../src/sparsity/thresholds.js";
import { synthesizeModel } from "../src/synth/synth.js";
import { runCli, useTempCache } from "./helpers/cli.js";
import { defaultBackend } from "../src/backends/default.js";

const MB = 1 << 20;
const LEVELS = [...SPARSITY_LEVELS];
// Made-up measurements: quality falls with sparsity, with a dip at 0.6 that 0.7 "recovers"
// (measurement noise the floor must not trust).
const QUALITY: LevelQuality = {
  kl: [0, 0.01, 0.03, 0.06, 0.1, 0.2, 0.45, 0.4, 1, 2],
  top1: [1, 0.97, 0.93, 0.88, 0.82, 0.77, 0.6, 0.65, 0.4, 0.2],
  tokens: 1000,
};

function input(over: Partial<TuneInput>): TuneInput {
  const profile: MachineProfile = {
    key: "test", measuredAt: "", columnBytesPerSecond: 2000 * MB,
    readBandwidth: [{ bytes: 4096, bytesPerSecond: 200 * MB, queueDepth: 32 }, { bytes: MB, bytesPerSecond: 1000 * MB, queueDepth: 8 }],
  };
  // 1600 MiB left for 3200 MiB of weights: the budget asks for sparsity 0.5.
  return { weightBytes: 3200 * MB, layerBytes: 100 * MB, nLayer: 32, recordBytes: 6000, availableBytes: 1600 * MB, levels: LEVELS, groupSizes: [1], profile, ...over };
}

test("tune(): the floor caps the level the budget asks for; under the cap the budget decides", () => {
  const capped = tune(input({ quality: QUALITY, floor: { minTop1: 0.8 } }));
  assert.equal(capped.sparsity, 0.4);
  assert.match(capped.reason, /sparsity >= 0\.50, capped at 0\.4 by the quality floor \(top-1 >= 0\.8\); calibration measured KL 0\.100, top-1 0\.820 there;/);
  assert.equal(capped.predictedTop1, 0.82);
  assert.equal(capped.predictedKl, 0.1);
  // The budget asks for less than the floor allows: the budget's level, not the floor's.
  const light = tune(input({ availableBytes: 2600 * MB, quality: QUALITY, floor: { minTop1: 0.8 } }));
  assert.equal(light.sparsity, 0.2);
  assert.equal(light.predictedTop1, 0.93);
  // A KL bound; both bounds (the stricter decides).
  assert.equal(tune(input({ availableBytes: 400 * MB, quality: QUALITY, floor: { maxKl: 0.06 } })).sparsity, 0.3);
  assert.equal(tune(input({ availableBytes: 400 * MB, quality: QUALITY, floor: { maxKl: 0.2, minTop1: 0.9 } })).sparsity, 0.2);
  assert.equal(tune(input({ availableBytes: 400 * MB, quality: QUALITY, floor: { maxKl: 0.06, minTop1: 0.5 } })).sparsity, 0.3);
  // 0.7 meets top-1 >= 0.62, but 0.6 below it does not: the floor stops at 0.5.
  assert.equal(tune(input({ availableBytes: 400 * MB, quality: QUALITY, floor: { minTop1: 0.62 } })).sparsity, 0.5);
  assert.equal(floorLevel(LEVELS, QUALITY, { minTop1: 0.62 }), 0.5);
  // A floor lets the tuner past 0.5 where the levels meet it; an explicit cap still holds.
  assert.equal(tune(input({ availableBytes: 100 * MB, quality: QUALITY, floor: { maxKl: 5 } })).sparsity, 0.9);
  const both = tune(input({ availableBytes: 100 * MB, quality: QUALITY, floor: { minTop1: 0.5 }, maxSparsity: 0.3 }));
  assert.equal(both.sparsity, 0.3);
  assert.match(both.reason, /capped at 0\.3 by the sparsity cap/);
  // A floor only dense meets: dense.
  assert.equal(tune(input({ quality: QUALITY, floor: { minTop1: 0.99 } })).sparsity, 0);
  // Without a floor the chosen level's measured quality is still reported.
  const free = tune(input({ quality: QUALITY }));
  assert.equal(free.sparsity, 0.5);
  assert.equal(free.predictedTop1, 0.77);
  assert.equal(tune(input({})).predictedTop1, undefined, "a table without the numbers predicts nothing");
  assert.throws(() => tune(input({ floor: { minTop1: 0.8 } })), /needs the levels' measured quality/);
  const high = { kl: [0.06, 0.2], top1: [0.88, 0.77], tokens: 10 };
  assert.throws(() => tune(input({ levels: [0.3, 0.5], quality: high, floor: { minTop1: 0.9 } })), /no calibrated sparsity level meets the quality floor top-1 >= 0\.9/);
});

// A one-layer table by hand: level 0 keeps everything, 0.5 a made-up threshold.
const HAND: ThresholdTable = {
  levels: [0, 0.5], nLayer: 1, sites: SITES, calibrationTokens: 100, source: "hand",
  thresholds: [new Float32Array(4).fill(-1), new Float32Array(4).fill(0.25)],
  quality: { kl: [0, 0.2], top1: [1, 0.7], tokens: 99 },
};

test("the table's quality round-trips through its JSON; a table without it loads; bad numbers are named", () => {
  const json = JSON.parse(JSON.stringify(tableToJson(HAND))) as Record<string, unknown>;
  assert.equal(json.version, 1, "an added optional field, as method and selection were: older builds ignore it");
  assert.deepEqual(tableFromJson(json, "t.json").quality, HAND.quality);
  const { quality: _, ...old } = json;
  assert.equal(tableFromJson(old, "t.json").quality, undefined);
  const bad: [unknown, RegExp][] = [
    [{ kl: [0, 0.2], top1: [1, 1.2], tokens: 99 }, /^t\.json: quality\.top1\[1\] must be a number in \[0, 1\], found 1\.2$/],
    [{ kl: [-0.1, 0.2], top1: [1, 0.7], tokens: 99 }, /^t\.json: quality\.kl\[0\] must be a finite number >= 0, found -0\.1$/],
    [{ kl: [0], top1: [1, 0.7], tokens: 99 }, /^t\.json: quality\.kl must hold 2 numbers, one per level$/],
    [{ kl: [0, 0.2], top1: [1, 0.7], tokens: 0 }, /^t\.json: quality\.tokens must be a positive integer, found 0$/],
    ["good", /^t\.json: quality must be an object/],
  ];
  for (const [quality, message] of bad) {
    assert.throws(() => tableFromJson({ ...json, quality }, "t.json"), (e: unknown) => isActiveflowError(e) && message.test(e.message), String(message));
  }
});

// ---- on a small random-weight model ----

let dir = "";
let model = "";
let flash = "";
let table: ThresholdTable;
const TEXT = [
  "Rivers carry sediment from the mountains to the sea, building deltas over thousands of years.",
  "The committee met on Tuesday to discuss the budget, but no decision was reached.",
  "She opened the window, and the smell of rain filled the small kitchen.",
].join(" ").repeat(8);

useTempCache("af-quality-floor-", async (d) => {
  dir = d;
  model = join(dir, "small.gguf");
  await synthesizeModel("small", GgmlType.F32, model, { seed: 4 });
  flash = join(dir, "small.af.gguf");
  await convertToFlash(defaultBackend(), model, flash, { groupSize: 1 });
  const e = await Engine.load(model, { contextLength: 256, threads: 1 });
  try {
    table = await calibrate(e, { text: TEXT, maxTokens: 400, method: "matched" });
  } finally {
    await e.dispose();
  }
  await storeCalibration(model, table);
  await storeCalibration(flash, table);
});

test("calibrate() stores each level's KL and top-1 on its text, as eval measures them at that level", async () => {
  const q = table.quality!;
  assert.ok(q, "the table holds the numbers");
  assert.equal(q.kl.length, table.levels.length);
  assert.equal(q.kl[0], 0);
  assert.equal(q.top1[0], 1);
  const e = await Engine.load(model, { contextLength: 256, threads: 1 });
  try {
    const text = await calibrationText(e, { text: TEXT, maxTokens: 400 });
    assert.equal(q.tokens, text.tokens - text.windows.length, "every position of a window but its last");
    const ids = text.windows.flat();
    for (const level of [0.3, 0.6, 0.9]) {
      const i = table.levels.indexOf(level);
      const ev = await evaluateQuality(e, ids, table.thresholds[i]!, { window: 256 });
      assert.equal(ev.tokens, q.tokens);
      assert.equal(q.top1[i], Number(ev.top1_agreement.toPrecision(6)), `top-1 at ${level}`);
      assert.ok(Math.abs(q.kl[i]! - ev.kl_to_dense) <= 1e-4 * ev.kl_to_dense + 1e-7, `KL at ${level}: ${q.kl[i]} vs eval ${ev.kl_to_dense}`);
    }
  } finally {
    await e.dispose();
  }
  const [lo, hi] = [q.kl[1]!, q.kl.at(-1)!];
  assert.ok(lo > 0 && hi > lo && q.top1.at(-1)! < 1, `quality falls with sparsity: KL ${q.kl.join(", ")}; top-1 ${q.top1.join(", ")}`);
  // Both homes of the table keep the numbers.
  assert.deepEqual((await loadCalibration(model))!.quality, q);
  assert.deepEqual((await loadCalibration(flash))!.quality, q, "6 significant digits survive the header's f32");
  assert.ok(q.kl.every((x) => x === Number(x.toPrecision(6))));
});

test("an interrupted calibration resumes its quality measurement from the checkpoint", async () => {
  const checkpoint = join(dir, "small.gguf.calibrate-checkpoint.json");
  const options = { text: TEXT, maxTokens: 400, levels: [0, 0.5] };
  const e = await Engine.load(model, { contextLength: 128, threads: 1 });
  try {
    const whole = await calibrate(e, options);
    const controller = new AbortController();
    await assert.rejects(
      calibrate(e, { ...options, checkpoint, signal: controller.signal, onProgress: (f, stage) => stage === "measuring quality" && f >= 0.3 && controller.abort() }),
      (err: unknown) => isActiveflowError(err) && err.code === "ABORTED",
    );
    const saved = JSON.parse(await readFile(checkpoint, "utf8")) as { quality?: { done: number } };
    assert.ok(saved.quality && saved.quality.done >= 1 && saved.quality.done < 4, `windows saved: ${saved.quality?.done}`);
    const resumed: string[] = [];
    const again = await calibrate(e, { ...options, checkpoint, onResume: (w) => resumed.push(w) });
    assert.deepEqual(resumed, [`the text, the dense statistics, ${saved.quality.done} quality windows`]);
    assert.deepEqual(again.quality, whole.quality);
    assert.equal(existsSync(checkpoint), false);
  } finally {
    await e.dispose();
  }
});

async function minimumBudget(): Promise<number> {
  const e = await Engine.load(flash, { contextLength: 64 });
  try {
    return e.plan!.minimumBytes;
  } finally {
    await e.dispose();
  }
}

test('sparsity "auto" with a floor: the engine picks the highest level under it and reports the prediction', async () => {
  const q = table.quality!;
  const budget = (await minimumBudget()) + MB;
  const free = await Engine.load(flash, { contextLength: 64, dram: budget, sparsity: "auto" });
  const unfloored = free.sparsity;
  await free.dispose();
  assert.ok(unfloored > 0.1, `a tight budget asks for sparsity: ${unfloored}`);
  // A floor at the top-1 level 0.1 measured: the cap falls below what the budget asks.
  const minTop1 = q.top1[1]!;
  const top = floorLevel(table.levels, q, { minTop1 })!;
  assert.ok(top < unfloored, `the floor binds: ${top} < ${unfloored}`);
  const e = await Engine.load(flash, { contextLength: 64, dram: budget, sparsity: "auto", minTop1 });
  try {
    assert.equal(e.sparsity, top);
    const i = table.levels.indexOf(top);
    assert.equal(e.tuning!.predictedTop1, q.top1[i], "the flash header's copy reads back as written");
    assert.ok(e.tuning!.predictedTop1! >= minTop1);
    assert.deepEqual(e.tuning!.floor, { minTop1 });
    assert.match(e.tuning!.reason, /by the quality floor \(top-1 >= /);
  } finally {
    await e.dispose();
  }
  // The CLI: run --json reports the level and its predicted quality.
  const r = await runCli(["run", flash, "-p", "The river", "-n", "2", "--greedy", "--dram", String(budget), "--sparsity", "auto", "--min-top1", String(minTop1), "--json"]);
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out.trim().split("\n").at(-1)!) as { sparsity: number; tuning: Record<string, unknown> };
  assert.equal(j.sparsity, top);
  assert.equal(j.tuning.sparsity, top);
  assert.equal(j.tuning.predicted_top1, q.top1[table.levels.indexOf(top)]);
  assert.equal(j.tuning.min_top1, minTop1);
  assert.equal(j.tuning.max_kl, null);
});

test("eval --sparsity auto scores the level the floor allows and reports its predicted quality", async () => {
  const q = table.quality!;
  const text = join(dir, "eval.txt");
  await writeFile(text, "A different text to score: the lighthouse keeper counted the ships that passed at night. ".repeat(4));
  const maxKl = q.kl[table.levels.indexOf(0.5)]!;
  const top = floorLevel(table.levels, q, { maxKl })!;
  const r = await runCli(["eval", model, "--text", text, "--sparsity", "auto", "--max-kl", String(maxKl), "--json"]);
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out.trim()) as { sparsity: number; kl_to_dense: number; tuning: Record<string, unknown> };
  assert.equal(j.sparsity, top);
  assert.ok(top >= 0.5, `levels up to 0.5 meet a KL bound of 0.5's own KL: ${top}`);
  assert.deepEqual(j.tuning, { sparsity: top, predicted_kl: q.kl[table.levels.indexOf(top)], predicted_top1: q.top1[table.levels.indexOf(top)], max_kl: maxKl, min_top1: null });
  assert.ok(j.kl_to_dense > 0);
  const t = await runCli(["eval", model, "--text", text, "--sparsity", "auto", "--max-kl", String(maxKl)]);
  assert.equal(t.code, 0, t.err);
  assert.match(t.out, new RegExp(`auto: sparsity ${top}, the highest level meeting KL <= `));
});

test("a table made before the numbers loads, but a floor on it fails in one line saying to calibrate again", async () => {
  const { quality: _, ...old } = table;
  const plain = join(dir, "old.gguf");
  await synthesizeModel("small", GgmlType.F32, plain, { seed: 4 });
  await saveCalibration(plain, old);
  assert.equal((await loadCalibration(plain))!.quality, undefined);
  const e = await Engine.load(plain, { contextLength: 64, sparsity: 0.5 });
  await e.dispose();
  const recalibrate = /holds no measured quality per level \(made before quality floors\); run `activeflow calibrate .*old\.gguf` again to use --max-kl \/ --min-top1$/;
  const oldFlash = join(dir, "old.af.gguf");
  await convertToFlash(defaultBackend(), plain, oldFlash, { groupSize: 1 });
  await saveCalibration(oldFlash, old);
  await assert.rejects(Engine.load(oldFlash, { contextLength: 64, dram: "90%", sparsity: "auto", minTop1: 0.8 }), /old\.af\.gguf: its calibration table holds no measured quality per level/);
  const text = join(dir, "old.txt");
  await writeFile(text, "Some text to score, long enough for a few tokens.");
  const r = await runCli(["eval", plain, "--text", text, "--sparsity", "auto", "--min-top1", "0.8"]);
  assert.equal(r.code, 1);
  assert.equal(r.err.trim().split("\n").length, 1, r.err);
  assert.match(r.err.trim(), recalibrate);
  assert.ok(existsSync(calibrationPath(plain)));
});

test("bad floor values and a floor without auto fail in one line naming the flag or option", async () => {
  const run = ["run", "m.gguf", "-p", "x", "--dram", "50%", "--sparsity", "auto"];
  const usage = (argv: string[], message: RegExp) =>
    assert.throws(() => parseArgs(argv), (e: unknown) => e instanceof UsageError && message.test(e.message) && !e.message.includes("\n"), argv.join(" "));
  usage([...run, "--min-top1", "1.5"], /^invalid value for --min-top1: "1\.5" \(expected a number >= 0 and <= 1\)$/);
  usage([...run, "--min-top1", "-0.1"], /^invalid value for --min-top1: "-0\.1"/);
  usage([...run, "--min-top1", "NaN"], /^invalid value for --min-top1: "NaN"/);
  usage([...run, "--max-kl", "-1"], /^invalid value for --max-kl: "-1" \(expected a number >= 0 and <= 100\)$/);
  usage([...run, "--max-kl", "nan"], /^invalid value for --max-kl: "nan"/);
  usage(["run", "m.gguf", "-p", "x", "--dram", "50%", "--sparsity", "0.5", "--min-top1", "0.8"], /^--min-top1 applies only with --sparsity auto$/);
  usage(["eval", "m.gguf", "--text", "t", "--max-kl", "0.1"], /^--max-kl applies only with --sparsity auto$/);
  usage(["eval", "m.gguf", "--text", "t", "--sparsity", "auto"], /^eval --sparsity auto needs a quality floor/);
  usage(["reorder", "m.gguf", "--sparsity", "auto"], /--sparsity auto applies to run, chat .* and eval/);
  const ok = parseArgs([...run, "--min-top1", "0.8", "--max-kl", "0.3"]);
  assert.ok(ok.kind === "command" && ok.values.minTop1 === 0.8 && ok.values.maxKl === 0.3);
  const ev = parseArgs(["eval", "m.gguf", "--text", "t", "--sparsity", "auto", "--min-top1", "0.8"]);
  assert.ok(ev.kind === "command" && ev.values.autoSparsity === true);
  // The library names its options.
  const base = { contextLength: 64, dram: "90%", sparsity: "auto" as const };
  await assert.rejects(Engine.load(flash, { ...base, minTop1: 1.5 }), /minTop1 must be a number in \[0, 1\] \(a share of tokens\), got 1\.5/);
  await assert.rejects(Engine.load(flash, { ...base, maxKl: Number.NaN }), /maxKl must be a finite number >= 0 \(nats of KL per token\), got NaN/);
  await assert.rejects(Engine.load(flash, { ...base, maxKl: -1 }), /maxKl must be a finite number >= 0/);
  await assert.rejects(Engine.load(flash, { contextLength: 64, sparsity: 0.5, minTop1: 0.8 }), /maxKl \/ minTop1 \(a quality floor\) apply only with sparsity "auto", got sparsity 0\.5/);
});
