// Greedy generation through the public Engine API, for token-identity tests.
import type { Engine } from "../../src/engine/Engine.js";
import type { GenerationStats } from "../../src/engine/types.js";

export async function greedy(e: Engine, ids: readonly number[], maxTokens: number): Promise<{ ids: number[]; stats: GenerationStats }> {
  const gen = e.generate(ids, { greedy: true, maxTokens, stopAtEos: false });
  const out: number[] = [];
  for (;;) {
    const r = await gen.next();
    if (r.done === true) return { ids: out, stats: r.value };
    out.push(r.value.id);
  }
}
