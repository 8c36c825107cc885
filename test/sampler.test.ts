import { test } from "node:test";
import assert from "node:assert/strict";
import { Sampler } from "../src/engine/sampler.js";
import { Rng } from "../src/engine/rng.js";
import { ActiveflowError } from "../src/errors.js";

// Deterministic pseudo-logits over a SmolLM2-sized vocab.
function fakeLogits(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = (rng.nextFloat() - 0.5) * 20;
  return x;
}

function argmax(x: Float32Array): number {
  let b = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[b]!) b = i;
  return b;
}

function softmax(x: number[], t = 1): number[] {
  const max = Math.max(...x);
  const e = x.map((v) => Math.exp((v - max) / t));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

test("greedy picks the argmax, and temperature 0 means greedy", () => {
  const x = fakeLogits(49152, 1);
  const want = argmax(x);
  assert.equal(new Sampler({ greedy: true }).sample(x, []), want);
  assert.equal(new Sampler({ temperature: 0, seed: 5 }).sample(x, []), want);
  // Ties go to the first index, as llama.cpp's greedy sampler.
  assert.equal(new Sampler({ greedy: true }).sample(new Float32Array([1, 3, 3, 2]), []), 1);
});

test("top-k = 1 equals greedy whatever the seed and temperature", () => {
  for (let s = 0; s < 20; s++) {
    const x = fakeLogits(49152, 100 + s);
    const sampler = new Sampler({ topK: 1, temperature: 1.5, topP: 1, minP: 0, seed: s });
    assert.equal(sampler.sample(x, []), argmax(x));
  }
});

test("same seed gives the same sequence; different seeds differ", () => {
  const x = fakeLogits(4096, 2);
  const opts = { temperature: 1.2, topK: 0, topP: 1, minP: 0 };
  const run = (seed: number) => {
    const s = new Sampler({ ...opts, seed });
    return Array.from({ length: 64 }, () => s.sample(x, []));
  };
  assert.deepEqual(run(42), run(42));
  assert.notDeepEqual(run(42), run(43));
  // Seeds above 2^32 use their high bits too.
  assert.notDeepEqual(run(1), run(1 + 2 ** 32));
});

test("top-k keeps exactly the k best tokens, with the right probabilities", () => {
  const x = fakeLogits(49152, 3);
  const k = 40;
  const d = new Sampler({ topK: k, topP: 1, minP: 0, temperature: 0.7, seed: 1 }).distribution(x, []);
  const best = Array.from(x.keys()).sort((a, b) => x[b]! - x[a]!).slice(0, k);
  assert.deepEqual(d.ids, best);
  const want = softmax(best.map((i) => x[i]!), 0.7);
  d.probs.forEach((p, i) => assert.ok(Math.abs(p - want[i]!) < 1e-12));
});

test("top-p keeps the shortest prefix reaching p", () => {
  // probabilities 0.5, 0.25, 0.125, 0.0625, 0.0625
  const x = new Float32Array([Math.log(0.0625), Math.log(0.5), Math.log(0.125), Math.log(0.25), Math.log(0.0625)]);
  const ids = (topP: number) => new Sampler({ topK: 0, topP, minP: 0, temperature: 1, seed: 0 }).distribution(x, []).ids;
  assert.deepEqual(ids(0.5), [1]);
  assert.deepEqual(ids(0.7), [1, 3]);
  assert.deepEqual(ids(0.75), [1, 3]);
  assert.deepEqual(ids(0.8), [1, 3, 2]);
  assert.deepEqual(ids(0.01), [1]);
  assert.equal(ids(1).length, 5);
  const d = new Sampler({ topK: 0, topP: 0.8, minP: 0, temperature: 1, seed: 0 }).distribution(x, []);
  assert.ok(Math.abs(d.probs[0]! - 0.5 / 0.875) < 1e-6);
});

test("top-p over the whole vocab matches a brute-force sort, peaked or flat", () => {
  for (const [scale, topP] of [[1, 0.9], [4, 0.95], [12, 0.95], [30, 0.5], [0.01, 0.3]] as const) {
    const x = fakeLogits(20000, Math.round(scale * 100));
    for (let i = 0; i < x.length; i++) x[i] = x[i]! * scale * 0.2;
    const d = new Sampler({ topK: 0, topP, minP: 0, temperature: 1, seed: 0 }).distribution(x, []);
    const order = Array.from(x.keys()).sort((a, b) => x[b]! - x[a]! || a - b);
    const p = softmax(order.map((i) => x[i]!));
    let acc = 0;
    let k = 0;
    while (k < p.length && acc < topP - 1e-9) acc += p[k++]!;
    assert.equal(d.ids.length, k, `scale ${scale}`);
    assert.deepEqual(new Set(d.ids), new Set(order.slice(0, k)));
  }
});

test("min-p drops tokens below minP * p(max), on the temperature-1 distribution", () => {
  const x = new Float32Array([Math.log(0.5), Math.log(0.2), Math.log(0.15), Math.log(0.1), Math.log(0.05)]);
  const ids = (minP: number, temperature = 1) =>
    new Sampler({ topK: 0, topP: 1, minP, temperature, seed: 0 }).distribution(x, []).ids.sort();
  assert.deepEqual(ids(0.25), [0, 1, 2]); // floor 0.125
  assert.deepEqual(ids(0.29), [0, 1, 2]); // floor 0.145
  assert.deepEqual(ids(0.31), [0, 1]); // floor 0.155
  assert.deepEqual(ids(0.5), [0]); // floor 0.25
  assert.deepEqual(ids(0.05), [0, 1, 2, 3, 4]);
  // A hot temperature flattens the survivors but does not change the cut.
  assert.deepEqual(ids(0.25, 5), [0, 1, 2]);
});

test("top-k, top-p and min-p apply in llama.cpp order", () => {
  const p = [0.4, 0.3, 0.2, 0.06, 0.04];
  const x = new Float32Array(p.map(Math.log));
  // top-k 3 renormalises to 0.444, 0.333, 0.222; top-p 0.7 keeps 2; min-p 0.5 keeps >= 0.222 -> both.
  const d = new Sampler({ topK: 3, topP: 0.7, minP: 0.5, temperature: 1, seed: 0 }).distribution(x, []);
  assert.deepEqual(d.ids, [0, 1]);
  assert.ok(Math.abs(d.probs[0]! - 4 / 7) < 1e-6);
});

test("repetition penalty divides positive logits and multiplies negative ones, once per token", () => {
  const x = new Float32Array([2.0, 1.9, -1, -1.05]);
  const g = (history: number[], penalty: number, lastN = 64) =>
    new Sampler({ greedy: true, repeatPenalty: penalty, repeatLastN: lastN }).sample(x, history);
  assert.equal(g([], 1.5), 0);
  assert.equal(g([0], 1.5), 1); // 2.0 / 1.5 < 1.9
  assert.equal(g([0, 0, 0], 1.06), 1); // once: 2.0/1.06 = 1.887 < 1.9 (three times would also, but...)
  assert.equal(g([0, 0, 0, 0, 0, 0], 1.04), 0); // ...once: 2.0/1.04 = 1.923 > 1.9
  assert.equal(g([0, 2, 5, 1], 1.5, 2), 0); // only the last 2 history tokens (5, 1) count; 5 is out of vocab
  const d = new Sampler({ topK: 0, topP: 1, minP: 0, temperature: 1, repeatPenalty: 2, seed: 0 }).distribution(x, [2]);
  const want = softmax([2.0, 1.9, -2, -1.05]);
  d.ids.forEach((id, i) => assert.ok(Math.abs(d.probs[i]! - want[id]!) < 1e-6));
  assert.equal(x[2], -1, "caller's logits are not modified");
});

test("empirical frequencies match the probabilities", () => {
  const p = [0.5, 0.2, 0.15, 0.1, 0.05];
  const x = new Float32Array(p.map(Math.log));
  const s = new Sampler({ topK: 0, topP: 1, minP: 0, temperature: 1, seed: 7 });
  const n = 200_000;
  const counts = [0, 0, 0, 0, 0];
  for (let i = 0; i < n; i++) counts[s.sample(x, [])]!++;
  counts.forEach((c, i) => {
    const sd = Math.sqrt((p[i]! * (1 - p[i]!)) / n);
    assert.ok(Math.abs(c / n - p[i]!) < 5 * sd, `token ${i}: ${c / n} vs ${p[i]}`);
  });
  // With temperature 2 the frequencies follow p^(1/2), renormalised.
  const t2 = softmax(p.map(Math.log), 2);
  const s2 = new Sampler({ topK: 0, topP: 1, minP: 0, temperature: 2, seed: 8 });
  const c2 = [0, 0, 0, 0, 0];
  for (let i = 0; i < n; i++) c2[s2.sample(x, [])]!++;
  c2.forEach((c, i) => assert.ok(Math.abs(c / n - t2[i]!) < 5 * Math.sqrt((t2[i]! * (1 - t2[i]!)) / n)));
});

test("sampling a 49152-entry vocab with top-k is fast", () => {
  const x = fakeLogits(49152, 9);
  const s = new Sampler({ seed: 1 }); // defaults: top-k 40, top-p 0.95, min-p 0.05
  const history = Array.from({ length: 64 }, (_, i) => i * 7);
  const t0 = performance.now();
  for (let i = 0; i < 200; i++) s.sample(x, history);
  const ms = (performance.now() - t0) / 200;
  // Loose bound (shared, loaded CI machines): it catches a full-vocab comparator sort (~150 ms).
  assert.ok(ms < 25, `${ms.toFixed(3)} ms per sample`);
});

test("bad options throw BAD_ARGUMENT naming the option", () => {
  assert.throws(() => new Sampler({ topK: -1 }), (e: unknown) => e instanceof ActiveflowError && e.code === "BAD_ARGUMENT" && /topK/.test(e.message));
  assert.throws(() => new Sampler({ topP: 1.5 }), /topP/);
  assert.throws(() => new Sampler({ repeatPenalty: 0 }), /repeatPenalty/);
  assert.throws(() => new Sampler({ seed: 1.5 }), /seed/);
});
