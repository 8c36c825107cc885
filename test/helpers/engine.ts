// Greedy generation through the public Engine API, for token-identity tests, a loaded engine
// for the length of a callback, and the largest difference between two sets of logits.
import assert from "node:assert/strict";
import { Engine } from "../../src/index.js";
import type { GenerationStats, LoadOptions } from "../../src/engine/types.js";

export async function withEngine<T>(path: string, options: LoadOptions, fn: (e: Engine) => Promise<T>): Promise<T> {
  const e = await Engine.load(path, options);
  try {
    return await fn(e);
  } finally {
    await e.dispose();
  }
}

export function maxAbsDiff(a: readonly Float32Array[], b: readonly Float32Array[]): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    for (let v = 0; v < a[i]!.length; v++) m = Math.max(m, Math.abs(a[i]![v]! - b[i]![v]!));
  }
  return m;
}

export async function greedy(e: Engine, ids: readonly number[], maxTokens: number): Promise<{ ids: number[]; stats: GenerationStats }> {
  const gen = e.generate(ids, { greedy: true, maxTokens, stopAtEos: false });
  const out: number[] = [];
  for (;;) {
    const r = await gen.next();
    if (r.done === true) return { ids: out, stats: r.value };
    out.push(r.value.id);
  }
}
