// Mixture-of-experts models against llama.cpp (node-llama-cpp) on tiny random-weight GGUFs
// written by our own writer (no network): Mixtral's layout (llama with experts), qwen3moe and
// qwen2moe (shared expert). First greedy token after 16 prompts, and teacher-forced
// next-token distributions over 256 tokens. Skips, saying why, when node-llama-cpp is
// missing. The measured numbers are printed for the closing note.
//
// The shape is the tiny test model's (dim 64, 2 layers, 300-token vocab; rows are whole
// 32-blocks for every quantised kernel of both engines). Each prompt's length differs, so
// prefill groups different numbers of tokens per expert.
//
// With F32 weights the two engines compute nearly the same numbers (mean KL ~5e-8): the
// routing, the expert FFNs and their sum are llama.cpp's. Both keep K and V in F16, where a
// last-bit difference of the float sums rounds to a different half now and then, so the
// residual streams part by ~1e-3 relative; a router whose k-th and (k+1)-th experts lie that
// close then picks another expert for that one token (seen as a lone KL spike of up to ~0.06,
// about once per 60-100 tokens at 4 of 16 experts). With quantised weights our dense path
// and llama.cpp's part by mean KL ~1e-4 on these random tiny models with or without experts
// (the dense tiny llama in Q8_0, printed below as the control: top-1 96.9 %, KL 1.3e-4), and a
// random 300-token head has about 3 % of positions whose top two logits lie that close. So
// the teacher-forced bounds are the control's level (top-1 >= 95 %), not the 97 %,
// which the dense path itself does not reach on this shape.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Engine } from "../src/index.js";
import { GgmlType, typeName } from "../src/gguf/types.js";
import { buildTinyModel, type TinyArch, type TinyExperts } from "../src/synth/tinyModel.js";
import { LlamaCppRef, compareDistributions } from "./helpers/llamacpp.js";
import { greedy } from "./helpers/engine.js";
import { rng } from "./helpers/random.js";

const PROMPTS = 16;
const FORCED_TOKENS = 256;

interface Case {
  label: string;
  arch: TinyArch;
  type: number;
  experts: TinyExperts | undefined;
}

// One file per layout, each in another weight type; the expert counts and widths follow the
// real models' proportions (few wide experts for Mixtral, many narrow ones for the Qwens).
const MIXTRAL = { count: 8, used: 2, ffn: 128 };
const QWEN3 = { count: 16, used: 4, ffn: 64 };
const QWEN2 = { count: 8, used: 2, ffn: 64 };
const CASES: Case[] = [
  { label: "mixtral", arch: "llama", type: GgmlType.F32, experts: MIXTRAL },
  { label: "qwen3moe", arch: "qwen3moe", type: GgmlType.F32, experts: QWEN3 },
  { label: "qwen2moe", arch: "qwen2moe", type: GgmlType.F32, experts: QWEN2 },
  { label: "mixtral", arch: "llama", type: GgmlType.Q4_0, experts: MIXTRAL },
  { label: "qwen3moe", arch: "qwen3moe", type: GgmlType.Q8_0, experts: QWEN3 },
  { label: "qwen2moe", arch: "qwen2moe", type: GgmlType.Q4_1, experts: QWEN2 },
  { label: "dense-control", arch: "llama", type: GgmlType.Q8_0, experts: undefined },
];

const dir = mkdtempSync(join(tmpdir(), "af-moe-parity-"));
after(() => rmSync(dir, { recursive: true, force: true }));

async function open(c: Case): Promise<{ engine: Engine; ref: LlamaCppRef; endIds: number[] } | string> {
  const path = join(dir, `${c.label}-${c.type}.gguf`);
  const tiny = await buildTinyModel(path, { arch: c.arch, type: c.type, ...(c.experts ? { experts: c.experts } : {}), seed: 7, contextLength: 512 });
  const ref = await LlamaCppRef.load(path, { threads: 1, contextSize: 512, batchSize: 512 });
  if (typeof ref === "string") return ref;
  const engine = await Engine.load(path, { threads: 1, contextLength: 512 });
  return { engine, ref, endIds: [tiny.config.eosId, tiny.config.eotId] };
}

for (const c of CASES) {
  const what = c.experts ? `${c.experts.used} of ${c.experts.count} experts` : "no experts";
  test(`${c.label} (${typeName(c.type)}, ${what}): first greedy token and teacher-forced logits match llama.cpp`, { timeout: 300_000 }, async (t) => {
    const o = await open(c);
    if (typeof o === "string") return t.skip(o);
    const { engine, ref, endIds } = o;
    try {
      assert.deepEqual(engine.config.moe, c.experts && {
        nExpert: c.experts.count, nExpertUsed: c.experts.used, nFfExp: c.experts.ffn,
        normWeights: c.arch !== "qwen2moe", nFfShexp: c.arch === "qwen2moe" ? 2 * c.experts.ffn : 0,
      });
      const u = rng(11);
      const V = engine.config.nVocab;
      let agree = 0;
      const misses: string[] = [];
      for (let p = 0; p < PROMPTS; p++) {
        // 3 to 63 tokens: decode, and prefill batches of many sizes.
        const ids = Array.from({ length: 3 + p * 4 }, () => Math.floor(u() * V));
        const want = (await ref.greedy(ids, 1)).ids[0];
        const got = (await greedy(engine, ids, 1)).ids[0]!;
        // node-llama-cpp yields nothing when the greedy token ends generation (</s>, <|im_end|>).
        if (want === got || (want === undefined && endIds.includes(got))) agree++;
        else misses.push(`prompt ${p} (${ids.length} tokens): llama.cpp ${want}, ours ${got}`);
      }
      const ids = Array.from({ length: FORCED_TOKENS }, () => Math.floor(u() * V));
      const r = compareDistributions(await ref.teacherForced(ids), await engine.evaluateLogits(ids));
      console.log(
        `moe-parity/${c.label} ${typeName(c.type)}: first greedy token ${agree}/${PROMPTS}; teacher-forced ${FORCED_TOKENS} tokens: ` +
          `top-1 ${(r.top1 * 100).toFixed(2)} %, mean KL ${r.meanKl.toExponential(3)}, max KL ${r.maxKl.toExponential(3)} at ${r.maxKlAt}`,
      );
      for (const m of misses) console.log(`  ${m}`);
      for (const d of r.disagreements.slice(0, 8)) {
        console.log(`  position ${d.position}: llama.cpp top ${d.refTop}, ours ${d.oursTop}; llama.cpp's margin ${d.refMargin.toFixed(4)}`);
      }
      assert.ok(agree >= 15, `first greedy token agrees on ${agree} of ${PROMPTS} prompts, expected >= 15`);
      if (c.type === GgmlType.F32) {
        assert.ok(r.top1 >= 0.98, `F32: teacher-forced top-1 agreement ${(r.top1 * 100).toFixed(2)} % is below 98 %`);
        assert.ok(r.meanKl <= 1e-4, `F32: mean KL ${r.meanKl} is above 1e-4`);
      } else {
        assert.ok(r.top1 >= 0.95, `teacher-forced top-1 agreement ${(r.top1 * 100).toFixed(2)} % is below 95 %`);
        assert.ok(r.meanKl <= 1e-3, `mean KL ${r.meanKl} is above 1e-3`);
      }
    } finally {
      await engine.dispose();
      await ref.dispose();
    }
  });
}
