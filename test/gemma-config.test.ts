// Gemma 2 / 3 hyper-parameters as llama.cpp reads them (src/model/gemma.ts): keys, defaults,
// the sliding-window layer pattern, rope bases and scaling, and one-line refusals of the
// variants this engine does not run.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isActiveflowError } from "../src/errors.js";
import { readGguf } from "../src/gguf/reader.js";
import type { GgufFile, GgufValue } from "../src/gguf/types.js";
import { GgmlType } from "../src/gguf/types.js";
import { readModelConfig } from "../src/model/config.js";
import { buildTinyModel } from "../src/synth/tinyModel.js";

const dir = await mkdtemp(join(tmpdir(), "af-gemma-config-"));
after(() => rm(dir, { recursive: true, force: true }));

const files = new Map<string, GgufFile>();
async function tiny(arch: "gemma2" | "gemma3"): Promise<GgufFile> {
  if (!files.has(arch)) {
    const path = join(dir, `${arch}.gguf`);
    await buildTinyModel(path, { arch, type: GgmlType.Q8_0, slidingWindow: 4 });
    files.set(arch, await readGguf(path));
  }
  return files.get(arch)!;
}

// The tiny file with metadata keys set (undefined: removed) and tensors added.
async function variant(arch: "gemma2" | "gemma3", keys: Record<string, GgufValue | undefined>, extraTensors: string[] = []): Promise<GgufFile> {
  const f = await tiny(arch);
  const metadata = new Map(f.metadata);
  for (const [k, v] of Object.entries(keys)) {
    if (v === undefined) metadata.delete(k);
    else metadata.set(k, v);
  }
  const tensors = [...f.tensors, ...extraTensors.map((name) => ({ name, dims: [128], type: GgmlType.F32, offset: 0, bytes: 512 }))];
  return { ...f, metadata, tensors };
}

const f32 = Math.fround;

test("gemma2: embedding scale, q scale, soft-caps, window on even layers", async () => {
  const c = readModelConfig(await tiny("gemma2"));
  assert.equal(c.arch, "gemma2");
  assert.equal(c.embdScale, f32(Math.sqrt(128)));
  assert.equal(c.attnScale, f32(1 / f32(Math.sqrt(48))), "1/sqrt(head_dim), not 1/sqrt(n_embd / n_head)");
  assert.deepEqual([c.attnSoftcap, c.finalSoftcap], [3, 4]);
  assert.deepEqual([c.ffnGelu, c.postNorms, c.ropeNeox], [true, true, true]);
  assert.equal(c.slidingWindow, 4);
  assert.deepEqual(c.swaLayers, [true, false, true, false]);
  assert.deepEqual([c.ropeTheta, c.ropeThetaSwa, c.ropeScale, c.ropeScaleSwa], [10000, 10000, 1, 1]);
});

test("gemma2 without its keys takes llama.cpp's defaults: window 4096, caps 50 and 30", async () => {
  const c = readModelConfig(await variant("gemma2", {
    "gemma2.attention.sliding_window": undefined, "gemma2.attn_logit_softcapping": undefined, "gemma2.final_logit_softcapping": undefined,
  }));
  assert.deepEqual([c.slidingWindow, c.attnSoftcap, c.finalSoftcap], [4096, 50, 30]);
});

test("the 27B layer counts scale q by 1/sqrt(n_embd / n_head), as llama.cpp does", async () => {
  const g2 = readModelConfig(await variant("gemma2", { "gemma2.block_count": 46 }));
  assert.equal(g2.attnScale, f32(1 / f32(Math.sqrt(128 / 4))));
  const g3 = readModelConfig(await variant("gemma3", { "gemma3.block_count": 62 }));
  assert.equal(g3.attnScale, f32(1 / f32(Math.sqrt(128 / 4))));
  assert.equal(readModelConfig(await variant("gemma3", { "gemma3.block_count": 61 })).attnScale, f32(1 / f32(Math.sqrt(48))));
});

test("gemma3: 5 local layers in 6 at base 10000, global base and linear scaling", async () => {
  const c = readModelConfig(await tiny("gemma3"));
  assert.deepEqual(c.swaLayers, [true, true, true, true, true, false]);
  assert.deepEqual([c.attnSoftcap, c.finalSoftcap], [0, 0]);
  assert.deepEqual([c.ropeTheta, c.ropeThetaSwa], [1e6, 10000]);
  assert.deepEqual([c.ropeScale, c.ropeScaleSwa], [f32(1 / 8), 1], "only the global layers are scaled");
  const swaBase = readModelConfig(await variant("gemma3", { "gemma3.rope.freq_base_swa": 20000 }));
  assert.equal(swaBase.ropeThetaSwa, 20000);
  // No window key: no sliding layers, every layer on the global base.
  const dense = readModelConfig(await variant("gemma3", { "gemma3.attention.sliding_window": undefined }));
  assert.equal(dense.slidingWindow, 0);
  assert.ok(dense.swaLayers.every((b) => !b));
  assert.equal(dense.ropeThetaSwa, 1e6);
  // A final soft-cap when the file gives one.
  assert.equal(readModelConfig(await variant("gemma3", { "gemma3.final_logit_softcapping": 30 })).finalSoftcap, 30);
});

test("sliding_window_pattern: a period (0 = every layer) or one boolean per layer", async () => {
  assert.deepEqual(readModelConfig(await variant("gemma2", { "gemma2.attention.sliding_window_pattern": 3 })).swaLayers, [true, true, false, true]);
  assert.deepEqual(readModelConfig(await variant("gemma2", { "gemma2.attention.sliding_window_pattern": 0 })).swaLayers, [true, true, true, true]);
  const per = [false, true, true, false];
  assert.deepEqual(readModelConfig(await variant("gemma2", { "gemma2.attention.sliding_window_pattern": per })).swaLayers, per);
  await assert.rejects(
    async () => readModelConfig(await variant("gemma2", { "gemma2.attention.sliding_window_pattern": [true, false] })),
    (e: unknown) => isActiveflowError(e) && e.code === "GGUF_BAD_VALUE" && /sliding_window_pattern must hold 4 booleans/.test(e.message),
  );
});

test("rope scaling: linear by default type, the old scale_linear key, none scales only local gemma2 layers", async () => {
  const old = readModelConfig(await variant("gemma3", { "gemma3.rope.scaling.type": undefined, "gemma3.rope.scaling.factor": undefined, "gemma3.rope.scale_linear": 4 }));
  assert.equal(old.ropeScale, f32(1 / 4));
  const none = readModelConfig(await variant("gemma2", { "gemma2.rope.scaling.type": "none", "gemma2.rope.scaling.factor": 8 }));
  assert.deepEqual([none.ropeScale, none.ropeScaleSwa], [1, f32(1 / 8)]);
});

function refused(code: string, pattern: RegExp) {
  return (e: unknown) => isActiveflowError(e) && e.code === code && pattern.test(e.message) && !e.message.includes("\n");
}

test("unsupported variants are refused in one line naming the key or tensor", async () => {
  await assert.rejects(async () => readModelConfig(await variant("gemma3", { "gemma3.rope.scaling.type": "yarn" })),
    refused("MODEL_UNSUPPORTED", /rope scaling "yarn" \(metadata gemma3\.rope\.scaling\.type\) is not supported/));
  await assert.rejects(async () => readModelConfig(await variant("gemma3", { "gemma3.rope.scaling.attn_factor": 2 })),
    refused("MODEL_UNSUPPORTED", /gemma3\.rope\.scaling\.attn_factor = 2/));
  await assert.rejects(async () => readModelConfig(await variant("gemma3", {}, ["v.blk.0.attn_q.weight"])),
    refused("MODEL_UNSUPPORTED", /gemma3 tensor v\.blk\.0\.attn_q\.weight is not supported/));
  await assert.rejects(async () => readModelConfig(await variant("gemma3", {}, ["blk.0.per_layer_inp_gate.weight"])),
    refused("MODEL_UNSUPPORTED", /blk\.0\.per_layer_inp_gate\.weight/));
  await assert.rejects(async () => readModelConfig(await variant("gemma2", {}, ["output.weight"])),
    refused("MODEL_UNSUPPORTED", /gemma2 tensor output\.weight/));
  await assert.rejects(async () => readModelConfig(await variant("gemma2", {}, ["blk.0.attn_q_norm.weight"])),
    refused("MODEL_UNSUPPORTED", /gemma2 tensor blk\.0\.attn_q_norm\.weight/));
  await assert.rejects(async () => readModelConfig(await variant("gemma2", { "gemma2.attention.key_length_swa": 64 })),
    refused("MODEL_UNSUPPORTED", /gemma2\.attention\.key_length_swa = 64/));
  await assert.rejects(async () => readModelConfig(await variant("gemma3", { "general.architecture": "gemma3n" })),
    refused("MODEL_UNSUPPORTED", /architecture "gemma3n" is not supported/));
});
