// Record order and the static cache: `activeflow reorder` rewrites a flash file hottest record
// first (the order and the activities in its header, checksums recomputed, atomically); the
// engine reads through the order, so tokens and logits are those of the channel-order file
// under every cache policy, a cache that is resized between passes, the split (Q4_0) and
// requantised (Q8_0 columns) layouts, groups of 1 and 2 layers and the scalar path; the static
// policy pins its set at the first visit and never reads a pinned record again; bad values fail
// with one line naming them.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { copyFile, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadAddon } from "../src/backends/native/binding.js";
import { helpText } from "../src/cli/args.js";
import { main } from "../src/cli/main.js";
import { Engine } from "../src/index.js";
import { CACHE_POLICIES, type CachePolicy } from "../src/engine/types.js";
import { isActiveflowError } from "../src/errors.js";
import { convertToFlash } from "../src/flash/convert.js";
import { KEY, SITES } from "../src/flash/format.js";
import { openFlashModel, verifyFlashFile } from "../src/flash/open.js";
import { reorderFlash, type ChannelActivity } from "../src/flash/reorder.js";
import { updateFlashMetadata } from "../src/flash/metadata.js";
import { GgmlType } from "../src/gguf/types.js";
import { u32Arr } from "../src/gguf/writer.js";
import { calibrate } from "../src/sparsity/calibrate.js";
import { storeCalibration } from "../src/sparsity/store.js";
import { synthesizeModel } from "../src/synth/synth.js";
import { captureContext } from "./helpers/cli.js";
import { defaultBackend } from "../src/backends/default.js";

let dir = "";
// Channel-order files (split Q4_0 records, groups of 1; requantised Q8_0 columns, groups of 2),
// calibrated; each has a hot-first copy and a channel-order copy with activities.
const files: { name: string; plain: string; hot: string; ident: string }[] = [];

const cli = () => captureContext({ loadEngine: async () => assert.fail("reorder loads its own engine") });

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "af-order-"));
  const src = join(dir, "small.gguf");
  await synthesizeModel("small", GgmlType.Q4_0, src, { seed: 5 });
  for (const [name, opts] of [["split-g1", { groupSize: 1 }], ["q8cols-g2", { groupSize: 2, columnType: GgmlType.Q8_0 }]] as const) {
    const plain = join(dir, `${name}.af.gguf`);
    await convertToFlash(defaultBackend(), src, plain, opts);
    const e = await Engine.load(plain, { contextLength: 128, threads: 1 });
    try {
      await storeCalibration(plain, await calibrate(e, { tokensPerPrompt: 4, method: "uniform" }));
    } finally {
      await e.dispose();
    }
    const hot = join(dir, `${name}.hot.af.gguf`);
    const ident = join(dir, `${name}.ident.af.gguf`);
    await copyFile(plain, hot);
    await copyFile(plain, ident);
    for (const [path, order] of [[hot, "hot"], [ident, "identity"]] as const) {
      const h = cli();
      assert.equal(await main(["reorder", path, "--sparsity", "0.5", "--order", order, "--tokens", "64", "--threads", "1", "--json"], h.ctx), 0, h.err());
      const report = JSON.parse(h.out().trim().split("\n").pop()!) as { order: string; sites: { moved: number }[] };
      assert.equal(report.order, order);
      if (order === "identity") assert.ok(report.sites.every((s) => s.moved === 0));
      else assert.ok(report.sites.some((s) => s.moved > 0.5), "a hot-first order moves most records");
    }
    files.push({ name, plain, hot, ident });
  }
});

after(async () => {
  if (dir !== "") await rm(dir, { recursive: true, force: true });
});

type Model = {
  setCacheBytes(b: number): void;
  flashStats(reset?: boolean): { cacheBytes?: number; fillBytesRead?: number; hits?: number; cacheSlots?: Int32Array };
};
const modelOf = (e: Engine) => (e as unknown as { model: Model }).model;

const PROMPT = [1, 7, 9, 30, 2, 11, 40, 3];
const TEXT = Array.from({ length: 40 }, (_, i) => 5 + ((i * 53) % 400));

// Greedy tokens and teacher-forced logits with the cache at each fraction of the extents in turn
// (re-planned between passes, so records are dropped, refilled and evicted).
async function runAt(path: string, policy: CachePolicy | undefined, fractions: readonly number[]): Promise<{ tokens: number[]; logits: Float32Array[] }> {
  const e = await Engine.load(path, { contextLength: 128, threads: 1, sparsity: 0.5, dram: "1000%", ...(policy ? { cachePolicy: policy } : {}) });
  try {
    const extentBytes = e.flash!.extents.reduce((a, x) => a + x.bytes, 0);
    const tokens: number[] = [];
    const logits: Float32Array[] = [];
    for (const f of fractions) {
      modelOf(e).setCacheBytes(Math.floor(f * extentBytes));
      const gen = e.generate(PROMPT, { maxTokens: 12, greedy: true, stopAtEos: false });
      for (let r = await gen.next(); !r.done; r = await gen.next()) tokens.push(r.value.id);
      logits.push(...(await e.evaluateLogits(TEXT)));
    }
    return { tokens, logits };
  } finally {
    await e.dispose();
  }
}

test("reorder stores a permutation and activities, moves the records and keeps the checksums right", async () => {
  for (const f of files) {
    const plain = await openFlashModel(f.plain);
    const hot = await openFlashModel(f.hot);
    const ident = await openFlashModel(f.ident);
    await verifyFlashFile(f.hot);
    await verifyFlashFile(f.ident);
    assert.ok(plain.extents.every((e) => !e.recordOrder && !e.recordFreq));
    // Version 3 marks a record order (older readers refuse it); channel order keeps the version.
    assert.equal(hot.version, 3);
    assert.equal(ident.version, plain.version);
    assert.ok(ident.extents.every((e) => !e.recordOrder && e.recordFreq));
    for (const [i, e] of hot.extents.entries()) {
      assert.ok(e.recordOrder && e.recordFreq, `${f.name} ${e.name} has its order and activities`);
      // Hottest first; the identity copy holds the same activities in channel order.
      for (let k = 1; k < e.nIn; k++) assert.ok(e.recordFreq[k - 1]! >= e.recordFreq[k]!, `${e.name} record ${k}`);
      const byChannel = ident.extents[i]!.recordFreq!;
      for (let k = 0; k < e.nIn; k++) assert.equal(e.recordFreq[k], byChannel[e.recordOrder[k]!]);
      // Record k of the hot file is record recordOrder[k] of the plain file, byte for byte.
      const { open } = await import("node:fs/promises");
      const [a, b] = [await open(f.plain, "r"), await open(f.hot, "r")];
      try {
        const p = plain.extents[i]!;
        for (const k of [0, 1, e.nIn - 1]) {
          const want = Buffer.alloc(e.recordBytes), got = Buffer.alloc(e.recordBytes);
          await a.read(want, 0, e.recordBytes, p.offset + e.recordOrder[k]! * e.recordBytes);
          await b.read(got, 0, e.recordBytes, e.offset + k * e.recordBytes);
          assert.ok(got.equals(want), `${f.name} ${e.name} record ${k}`);
        }
      } finally {
        await a.close();
        await b.close();
      }
    }
    // Thresholds survive the rewrite; no temporary file is left behind.
    assert.ok(hot.gguf.metadata.has(KEY.thresholdsPrefix + "values"));
  }
  assert.deepEqual((await readdir(dir)).filter((n) => n.includes(".reorder-") || n.includes(".tmp")), []);
});

test("a reordered file gives the channel-order file's tokens and logits under every cache policy and a resized cache", async () => {
  const addon = loadAddon();
  const best = addon.isaName();
  for (const isa of [best, "scalar"]) {
    addon.isaSet(isa);
    try {
      for (const f of files) {
        // Reference: the channel-order file, every record cached.
        const ref = await runAt(f.plain, "lfu", [1]);
        const fractions = [0.25, 0.1, 0.4];
        const want = { tokens: [] as number[], logits: [] as Float32Array[] };
        for (let i = 0; i < fractions.length; i++) {
          want.tokens.push(...ref.tokens);
          want.logits.push(...ref.logits);
        }
        for (const path of [f.hot, f.ident]) {
          for (const policy of CACHE_POLICIES) {
            const got = await runAt(path, policy, fractions);
            const what = `${isa} ${f.name} ${path === f.hot ? "hot" : "identity"} ${policy}`;
            assert.deepEqual(got.tokens, want.tokens, `${what}: tokens`);
            got.logits.forEach((row, r) => assert.deepEqual(Array.from(row), Array.from(want.logits[r]!), `${what}: logits row ${r}`));
          }
        }
      }
    } finally {
      addon.isaSet(best);
    }
  }
});

test("the static policy pins its set at the first visit and never reads a pinned record again", async () => {
  for (const f of files) {
    const e = await Engine.load(f.hot, { contextLength: 128, threads: 1, sparsity: 0.5, dram: "1000%", cachePolicy: "static" });
    try {
      const flash = e.flash!;
      const extentBytes = flash.extents.reduce((a, x) => a + x.bytes, 0);
      const m = modelOf(e);
      m.setCacheBytes(Math.floor(0.3 * extentBytes));
      const slots = Array.from(m.flashStats().cacheSlots!);
      await e.evaluateLogits(TEXT);
      const first = m.flashStats(true);
      assert.ok(first.fillBytesRead! > 0, `${f.name}: the set is read at the first visit`);
      await e.evaluateLogits(TEXT);
      const gen = e.generate(PROMPT, { maxTokens: 8, greedy: true, stopAtEos: false });
      for (let r = await gen.next(); !r.done; r = await gen.next());
      const later = m.flashStats(true);
      assert.equal(later.fillBytesRead, 0, `${f.name}: nothing is refilled or evicted`);
      assert.deepEqual(Array.from(m.flashStats().cacheSlots!), slots, `${f.name}: the slots do not move`);
      assert.ok(later.hits! > 0);
    } finally {
      await e.dispose();
    }
  }
});

test("bad values fail with one line naming them", async () => {
  const f = files[0]!;
  // The static policy on a file without activities.
  await assert.rejects(Engine.load(f.plain, { contextLength: 64, sparsity: 0.5, dram: "1000%", cachePolicy: "static" }),
    (e: unknown) => isActiveflowError(e) && e.code === "BAD_ARGUMENT" && /cache policy static needs .*activeflow reorder/.test(e.message));
  await assert.rejects(Engine.load(f.hot, { contextLength: 64, sparsity: 0.5, dram: "1000%", cachePolicy: "hot" as CachePolicy }),
    (e: unknown) => isActiveflowError(e) && /cache policy must be one of lfu, prefix, static, got hot/.test(e.message));
  let h = cli();
  assert.equal(await main(["run", f.hot, "--dram", "50%", "--cache-policy", "sticky", "-p", "x"], h.ctx), 2);
  assert.match(h.err(), /--cache-policy: "sticky"/);
  h = cli();
  assert.equal(await main(["reorder", f.hot, "--sparsity", "0.5", "--order", "cold"], h.ctx), 2);
  assert.match(h.err(), /--order: "cold"/);
  h = cli();
  assert.equal(await main(["reorder"], h.ctx), 2);
  assert.match(h.err(), /missing <file>/);
  assert.match(helpText("reorder"), /--order <name> +Record order to write: hot .* or identity/);
  assert.match(helpText(), /\n  reorder +\S/);
  h = cli();
  assert.equal(await main(["reorder", f.hot], h.ctx), 1);
  assert.equal(h.err(), "error: reorder: --sparsity must be a number in (0, 1), got nothing\n");
  h = cli();
  assert.equal(await main(["reorder", f.hot, "--sparsity", "0.5", "--text", join(dir, "wiki.test.raw")], h.ctx), 1);
  assert.match(h.err(), /is the evaluation text/);
  // A stored order that is not a permutation fails the load naming the key (a header-only edit
  // of a copy: same size as the real key).
  const broken = join(dir, "broken.af.gguf");
  await copyFile(f.hot, broken);
  const fm = await openFlashModel(broken);
  const order = Uint32Array.from(fm.extents.filter((e) => e.site === "attn_in").flatMap((e) => Array.from(e.recordOrder!)));
  order[1] = order[0]!;
  await updateFlashMetadata(broken, new Map([[KEY.recordOrder("attn_in"), u32Arr(order)]]));
  await assert.rejects(openFlashModel(broken), (e: unknown) => isActiveflowError(e) && /activeflow\.record_order\.attn_in is not a permutation of group 0's channels \(record 1 holds/.test(e.message));
  // An order in a file whose version does not say so is refused too.
  const unmarked = join(dir, "unmarked.af.gguf");
  await copyFile(f.ident, unmarked);
  await updateFlashMetadata(unmarked, new Map([[KEY.recordOrder("attn_in"), u32Arr(Uint32Array.from(order).fill(0).map((_, i) => i % 256))]]));
  await assert.rejects(openFlashModel(unmarked), /activeflow\.version is 2 and activeflow\.record_order\.attn_in is present/);
  // Activities of the wrong length are refused by the rewrite.
  const act: ChannelActivity = new Map(SITES.map((s) => [s, new Float64Array(3)]));
  await assert.rejects(reorderFlash(f.hot, act, { order: "hot" }), /activity of attn_in holds 3 values/);
});
