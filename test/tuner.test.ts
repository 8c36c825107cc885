// The cost model and greedy tuner (src/pipeline/tuner.ts) on made-up machine profiles: pure
// functions, so every expectation follows from the paper's rules, not from this machine.
import { test } from "node:test";
import assert from "node:assert/strict";
import { bandwidthAt, type MachineProfile } from "../src/pipeline/profile.js";
import { estimate, tune, type TuneInput } from "../src/pipeline/tuner.js";
import { parseArgs, UsageError } from "../src/cli/args.js";

const LEVELS = [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];
const MB = 1 << 20;

function profile(small: number, large: number, compute: number): MachineProfile {
  return {
    key: "test",
    measuredAt: "",
    readBandwidth: [
      { bytes: 4096, bytesPerSecond: small, queueDepth: 32 },
      { bytes: 1 << 20, bytesPerSecond: large, queueDepth: 8 },
    ],
    columnBytesPerSecond: compute,
  };
}

function input(over: Partial<TuneInput>): TuneInput {
  return {
    weightBytes: 3200 * MB,
    layerBytes: 100 * MB,
    nLayer: 32,
    recordBytes: 6000,
    availableBytes: 1600 * MB,
    levels: LEVELS,
    groupSizes: [1],
    profile: profile(200 * MB, 1000 * MB, 2000 * MB),
    ...over,
  };
}

test("bandwidthAt interpolates log-linearly between measured sizes and clamps outside", () => {
  const p = profile(100, 400, 1);
  assert.equal(bandwidthAt(p, 1024), 100);
  assert.equal(bandwidthAt(p, 4 << 20), 400);
  assert.ok(Math.abs(bandwidthAt(p, 65536) - 200) < 1e-9, "half way in log size is the geometric mean");
});

test("sparsity follows the budget (sp = 1 - available / weights, rounded up to a level) and a cap", () => {
  assert.equal(tune(input({ availableBytes: 1600 * MB })).sparsity, 0.5);
  assert.equal(tune(input({ availableBytes: 800 * MB })).sparsity, 0.8);
  assert.equal(tune(input({ availableBytes: 4000 * MB })).sparsity, 0);
  const capped = tune(input({ availableBytes: 800 * MB, maxSparsity: 0.5 }));
  assert.equal(capped.sparsity, 0.5);
  assert.match(capped.reason, /capped at 0.5/);
  assert.throws(() => tune(input({ maxSparsity: -1 })), /no calibrated sparsity level/);
});

test("more DRAM means more cache hits, fewer bytes and a faster token", () => {
  const a = estimate(input({ availableBytes: 800 * MB }), 0.5, 1);
  const b = estimate(input({ availableBytes: 1600 * MB }), 0.5, 1);
  assert.ok(b.hitRate > a.hitRate && b.bytesPerToken < a.bytesPerToken && b.tokensPerSecond > a.tokensPerSecond);
  assert.ok(b.preloadBytes > 0 && b.preloadBytes <= 1600 * MB * 0.5 && b.cacheBytes + b.preloadBytes <= 1600 * MB + 1);
});

test("the group grows while preload outlasts compute and larger reads pay; it stays at 1 when compute dominates", () => {
  const ioBound = tune(input({ groupSizes: [1, 2, 4, 8], overlap: 0.95, profile: profile(50 * MB, 1000 * MB, 20000 * MB) }));
  assert.ok(ioBound.groupSize > 1, `I/O bound: chose ${ioBound.groupSize}: ${JSON.stringify(ioBound.candidates)}`);
  const computeBound = tune(input({ groupSizes: [1, 2, 4, 8], profile: profile(500 * MB, 5000 * MB, 100 * MB) }));
  assert.equal(computeBound.groupSize, 1);
  // With no overlap between layers a group reads N times the bytes: never worth it.
  const noOverlap = tune(input({ groupSizes: [1, 2, 4, 8], overlap: 0 }));
  assert.equal(noOverlap.groupSize, 1);
});

test("CLI: --sparsity auto needs --dram on run, chat and serve, applies to run, chat, serve and eval only; --max-sparsity needs auto", () => {
  const ok = parseArgs(["run", "m.gguf", "-p", "x", "--dram", "50%", "--sparsity", "auto", "--max-sparsity", "0.3"]);
  assert.equal(ok.kind, "command");
  if (ok.kind === "command") {
    assert.equal(ok.values.autoSparsity, true);
    assert.equal(ok.values.maxSparsity, 0.3);
  }
  assert.throws(() => parseArgs(["run", "m.gguf", "-p", "x", "--sparsity", "auto"]), (e) => e instanceof UsageError && /needs a DRAM budget/.test(e.message));
  assert.throws(() => parseArgs(["reorder", "m.gguf", "--sparsity", "auto"]), (e) => e instanceof UsageError && /applies to run, chat, serve .* and eval/.test(e.message));
  assert.equal(parseArgs(["serve", "m.gguf", "--dram", "50%", "--sparsity", "auto"]).kind, "command");
  assert.throws(() => parseArgs(["serve", "m.gguf", "--sparsity", "auto"]), (e) => e instanceof UsageError && /needs a DRAM budget/.test(e.message));
  assert.throws(() => parseArgs(["run", "m.gguf", "-p", "x", "--dram", "1GB", "--max-sparsity", "0.3"]), (e) => e instanceof UsageError && /only with --sparsity auto/.test(e.message));
});
