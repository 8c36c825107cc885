// calibrate() reports the whole run's progress and time left, and an interrupted run resumes
// from its checkpoint to the same table an uninterrupted run makes (issue 15, item 2).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Engine } from "../src/index.js";
import { isActiveflowError } from "../src/errors.js";
import { GgmlType } from "../src/gguf/types.js";
import { calibrate } from "../src/sparsity/calibrate.js";
import { CalibrationProgress, formatEta } from "../src/sparsity/calibrationProgress.js";
import { buildTinyModel } from "../src/synth/tinyModel.js";

let dir = "";
let model = "";
const TEXT = "the cat sat on the hat and the sea was in the east. ".repeat(20);

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "af-calibrate-resume-"));
  model = join(dir, "tiny.gguf");
  await buildTinyModel(model, { type: GgmlType.Q8_0, contextLength: 512, seed: 3 });
});

after(async () => {
  if (dir !== "") await rm(dir, { recursive: true, force: true });
});

test("CalibrationProgress: time left from each kind's measured speed, borrowed before a kind has run", () => {
  let now = 0;
  const p = new CalibrationProgress(
    [
      { name: "generating text", kind: "decode", tokens: 100 },
      { name: "dense statistics", kind: "pass", tokens: 200 },
      { name: "matching level 0.5", kind: "pass", tokens: 400 },
    ],
    () => now,
  );
  assert.equal(p.overall().etaSeconds, undefined, "nothing timed yet");
  now = 10;
  const a = p.update("generating text", 0.5); // 50 decode tokens in 10 s
  // Left: 50 decode tokens (10 s) and 600 pass tokens at 1/8 of a decode token's 0.2 s (15 s).
  assert.ok(Math.abs(a.etaSeconds! - 25) < 1e-9, String(a.etaSeconds));
  now = 20;
  p.update("generating text", 1);
  now = 22;
  const b = p.update("dense statistics", 1); // passes measured: 200 tokens in 2 s
  assert.ok(Math.abs(b.etaSeconds! - 4) < 1e-9, String(b.etaSeconds));
  assert.ok(b.fraction > a.fraction && b.fraction < 1);
  now = 26;
  const c = p.update("matching level 0.5", 1);
  assert.equal(c.etaSeconds, 0);
  assert.equal(c.fraction, 1);
  assert.equal(formatEta(75), "1 min 15 s");
  assert.equal(formatEta(3 * 3600 + 120), "3 h 02 min");
});

test("an interrupted greedy calibration resumes from its checkpoint to the same table", async () => {
  const checkpoint = join(dir, "tiny.gguf.calibrate-checkpoint.json");
  const options = { text: TEXT, maxTokens: 256, method: "greedy" as const, levels: [0, 0.3, 0.5] };
  const e = await Engine.load(model, { threads: 1, contextLength: 512 });
  try {
    const etas: number[] = [];
    const whole = await calibrate(e, { ...options, onProgress: (_f, _s, o) => o?.etaSeconds !== undefined && etas.push(o.fraction) });
    assert.ok(etas.length > 0, "the overall progress carries a time estimate");
    assert.ok(Math.abs(etas.at(-1)! - 1) < 1e-9, `ends at 100 % (${etas.at(-1)})`);

    // Stop halfway through the probes.
    const controller = new AbortController();
    await assert.rejects(
      calibrate(e, {
        ...options, checkpoint, signal: controller.signal,
        onProgress: (f, stage) => {
          if (stage === "probing sensitivity" && f >= 0.5) controller.abort();
        },
      }),
      (err: unknown) => isActiveflowError(err) && err.code === "ABORTED",
    );
    const saved = JSON.parse(await readFile(checkpoint, "utf8")) as { probe?: { done: number }; dense?: unknown; text?: unknown };
    assert.ok(saved.text !== undefined && saved.dense !== undefined);
    assert.ok(saved.probe !== undefined && saved.probe.done >= 4 && saved.probe.done < 8, `probes saved: ${saved.probe?.done}`);

    const resumed: string[] = [];
    const stages = new Set<string>();
    const again = await calibrate(e, { ...options, checkpoint, onResume: (w) => resumed.push(w), onProgress: (_f, s) => stages.add(s ?? "") });
    assert.deepEqual(resumed, [`the text, the dense statistics, ${saved.probe.done} probes`]);
    assert.ok(!stages.has("dense statistics"), "the dense pass was not repeated");
    assert.deepEqual(again.thresholds, whole.thresholds);
    assert.deepEqual(again.siteSparsity, whole.siteSparsity);
    assert.equal(existsSync(checkpoint), false, "the checkpoint is removed once the table is complete");

    // A checkpoint of other settings is not used.
    const other = new AbortController();
    await assert.rejects(calibrate(e, { ...options, checkpoint, signal: other.signal, onProgress: (_f, s) => s === "matching level 0.3" && other.abort() }));
    const notResumed: string[] = [];
    await calibrate(e, { ...options, levels: [0, 0.5], checkpoint, onResume: (w) => notResumed.push(w) });
    assert.deepEqual(notResumed, []);
  } finally {
    await e.dispose();
  }
});
