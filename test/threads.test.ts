// The default thread count: the choice rule, the native probe, and its cache in the machine
// profile (a second call reads it instead of measuring again).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadAddon } from "../src/backends/native/binding.js";
import { defaultThreads, pickThreads } from "../src/engine/threads.js";
import { defaultBackend } from "../src/backends/default.js";

const s = (threads: number, decode: number, prefill: number) => ({ threads, decodeBytesPerSecond: decode, prefillMacsPerSecond: prefill });

test("pickThreads: more threads only when clearly faster on decode x prefill", () => {
  assert.equal(pickThreads([]), 1);
  assert.equal(pickThreads([s(1, 10, 10)]), 1);
  assert.equal(pickThreads([s(1, 10, 10), s(2, 12, 18)]), 2);
  // A 2 % gain is not worth a core.
  assert.equal(pickThreads([s(1, 10, 10), s(2, 10.1, 10.1)]), 1);
  // Decode slower with 2 threads outweighs a prefill gain of the same size.
  assert.equal(pickThreads([s(1, 10, 10), s(2, 5, 15)]), 1);
  assert.equal(pickThreads([s(1, 10, 10), s(2, 14, 18), s(3, 14.2, 18.2), s(4, 20, 20)]), 4);
});

test("threadScaling runs the pool at 1..n threads off the event loop", async () => {
  const addon = loadAddon();
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  const r = await addon.threadScaling(2, 4 << 20, 0.1);
  clearInterval(timer);
  assert.deepEqual(r.map((x) => x.threads), [1, 2]);
  for (const x of r) {
    assert.ok(x.decodeBytesPerSecond > 1e8 && x.prefillMacsPerSecond > 1e8, JSON.stringify(x));
  }
  assert.ok(ticks > 0, "the event loop stood still during the probe");
  assert.throws(() => addon.threadScaling(0, 4 << 20, 0.1), (e: Error & { code?: string }) => e.code === "BAD_ARGUMENT" && /maxThreads must be 1..256, got 0/.test(e.message));
});

test("defaultThreads measures once and then reads the machine profile", async () => {
  const dir = await mkdtemp(join(tmpdir(), "af-threads-"));
  const saved = process.env.ACTIVEFLOW_CACHE;
  process.env.ACTIVEFLOW_CACHE = dir;
  try {
    const t = await defaultThreads(defaultBackend());
    assert.ok(Number.isInteger(t) && t >= 1);
    const file = join(dir, "machine-profile.json");
    const first = await readFile(file, "utf8");
    const entry = Object.entries(JSON.parse(first) as Record<string, { threads: number; scaling: unknown[] }>).find(([k]) => k.startsWith("threads|"));
    assert.ok(entry, first);
    assert.equal(entry[1].threads, t);
    assert.ok(entry[1].scaling.length >= 1);
    assert.equal(await defaultThreads(defaultBackend()), t);
    assert.equal(await readFile(file, "utf8"), first, "the second call measured again");
  } finally {
    if (saved === undefined) delete process.env.ACTIVEFLOW_CACHE;
    else process.env.ACTIVEFLOW_CACHE = saved;
    await rm(dir, { recursive: true, force: true });
  }
});

test("logits are identical at 1, 2, 3 and 5 threads (more threads than cores), and with the packed and the file's layout on the scalar path", async () => {
  const { synthesizeModel } = await import("../src/synth/synth.js");
  const { Engine } = await import("../src/index.js");
  const { GgmlType } = await import("../src/gguf/types.js");
  const dir = await mkdtemp(join(tmpdir(), "af-threads-model-"));
  try {
    for (const [shape, type] of [["tiny", GgmlType.Q4_0], ["small", GgmlType.Q4_K]] as const) {
      const path = join(dir, `${shape}.gguf`);
      await synthesizeModel(shape, type, path, { seed: 9 });
      const ids = Array.from({ length: 40 }, (_, i) => 3 + ((i * 37) % 250));
      const logitsAt = async (threads: number): Promise<Float32Array[]> => {
        const e = await Engine.load(path, { threads, contextLength: 64 });
        try {
          // A prefill of 40 tokens, then single-token decode steps through generate.
          const rows = await e.evaluateLogits(ids);
          const gen: number[] = [];
          for await (const t of e.generate(ids.slice(0, 5), { greedy: true, maxTokens: 8, stopAtEos: false, addSpecial: false })) gen.push(t.id);
          return [...rows, Float32Array.from(gen)];
        } finally {
          await e.dispose();
        }
      };
      const one = await logitsAt(1);
      for (const threads of [2, 3, 5]) {
        const got = await logitsAt(threads);
        got.forEach((row, i) => assert.deepEqual(Array.from(row), Array.from(one[i]!), `${shape} ${threads} threads, row ${i}`));
      }
      // The scalar path's packed kernel is the plain reference on unpacked rows: any layout
      // slip (packing, tail rows, tied head) shows as a difference.
      const addon = loadAddon();
      const isa = addon.isaName();
      addon.isaSet("scalar");
      try {
        const packed = await logitsAt(2);
        process.env.ACTIVEFLOW_PACK = "0";
        let plain: Float32Array[];
        try {
          plain = await logitsAt(2);
        } finally {
          delete process.env.ACTIVEFLOW_PACK;
        }
        packed.forEach((row, i) => assert.deepEqual(Array.from(row), Array.from(plain[i]!), `${shape} scalar packed vs plain, row ${i}`));
      } finally {
        addon.isaSet(isa);
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
