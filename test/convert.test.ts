import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, open, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadAddon } from "../src/backends/native/binding.js";
import { isActiveflowError } from "../src/errors.js";
import { GgmlType, typeName } from "../src/gguf/types.js";
import { readGguf, findTensor } from "../src/gguf/reader.js";
import { GgufWriter, f32Arr, str, u32 } from "../src/gguf/writer.js";
import { buildTinyModel, type TinyArch } from "../src/synth/tinyModel.js";
import { crc32c } from "../src/flash/crc32c.js";
import { convertToFlash } from "../src/flash/convert.js";
import { updateFlashMetadata } from "../src/flash/metadata.js";
import { FLASH_ALIGNMENT, KEY, SITES } from "../src/flash/format.js";
import { checkExtentPages, flashExtent, openFlashModel, readExtentRecords, verifyFlashFile } from "../src/flash/open.js";
import { defaultBackend } from "../src/backends/default.js";

const addon = loadAddon();

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), "af-convert-"));
}

// Relative RMS bound of one requantised column, per column type.
const COLUMN_TOLERANCE: Record<number, number> = {
  [GgmlType.F32]: 0, [GgmlType.F16]: 1e-3, [GgmlType.Q8_0]: 0.02, [GgmlType.Q4_0]: 0.2, [GgmlType.Q4_1]: 0.2, [GgmlType.Q4_K]: 0.2,
};

// Reads every column back from the flash file and compares it with the source: bytes equal
// to quantizeRow(column of dequantised source), values within the column type's error, the
// site errors equal to the measured ones, resident tensors and metadata copied unchanged.
async function checkConversion(srcPath: string, flashPath: string): Promise<void> {
  const src = await readGguf(srcPath);
  const fm = await openFlashModel(flashPath);
  const srcBytes = await readFile(srcPath);
  const flash = await readFile(flashPath);
  for (const [k, v] of src.metadata) {
    if (k === "general.alignment") continue;
    assert.deepEqual(fm.gguf.metadata.get(k), v, `metadata ${k}`);
  }
  assert.equal(fm.gguf.metadata.get("general.alignment"), FLASH_ALIGNMENT);
  for (const t of fm.resident) {
    const s = findTensor(src, t.name)!;
    assert.equal(t.offset % FLASH_ALIGNMENT, 0);
    assert.ok(flash.subarray(t.offset, t.offset + t.bytes).equals(srcBytes.subarray(src.dataOffset + s.offset, src.dataOffset + s.offset + s.bytes)), t.name);
  }
  const siteErr = new Map(SITES.map((s) => [s, { diff: 0, ref: 0 }]));
  for (const e of fm.extents) {
    assert.equal(e.offset % FLASH_ALIGNMENT, 0, `${e.name} offset`);
    assert.equal(e.recordBytes, e.parts.reduce((n, p) => n + p.bytes, 0));
    for (const p of e.parts) {
      const info = findTensor(src, `blk.${p.layer}.${p.tensor}.weight`)!;
      const nIn = info.dims[0]!;
      const rows = addon.dequantizeRow(info.type, srcBytes.subarray(src.dataOffset + info.offset, src.dataOffset + info.offset + info.bytes), nIn * p.nOut);
      const col = new Float32Array(p.nOut);
      for (let j = 0; j < nIn; j++) {
        for (let r = 0; r < p.nOut; r++) col[r] = rows[r * nIn + j]!;
        const at = e.offset + j * e.recordBytes + p.offset;
        const stored = flash.subarray(at, at + p.bytes);
        assert.ok(stored.equals(addon.quantizeRow(e.columnType, col)), `${e.name} record ${j} ${p.tensor} of layer ${p.layer}`);
        const back = addon.dequantizeRow(e.columnType, stored, p.nOut);
        let diff = 0;
        let ref = 0;
        for (let r = 0; r < p.nOut; r++) {
          diff += (back[r]! - col[r]!) ** 2;
          ref += col[r]! ** 2;
        }
        const tol = COLUMN_TOLERANCE[e.columnType]!;
        if (tol === 0) assert.deepEqual(back, col, `${e.name} record ${j} exact`);
        else assert.ok(Math.sqrt(diff / ref) <= tol, `${e.name} record ${j}: error ${Math.sqrt(diff / ref)} > ${tol} for ${typeName(e.columnType)}`);
        const s = siteErr.get(e.site)!;
        s.diff += diff;
        s.ref += ref;
      }
    }
  }
  for (const [site, s] of siteErr) {
    const want = Math.sqrt(s.diff / s.ref);
    const got = fm.quantError.get(site)!;
    assert.ok(Math.abs(got - want) <= 1e-5 + 1e-4 * want, `quant error of ${site}: file says ${got}, measured ${want}`);
  }
  assert.deepEqual(await verifyFlashFile(flashPath), { pages: fm.crc.length, bytes: fm.extents.reduce((n, e) => n + e.bytes, 0) });
}

test("the addon's CRC-32C (used for pages) equals the TS table code", () => {
  const b = Uint8Array.from({ length: 9000 }, (_, i) => (i * 2654435761) >>> 24);
  for (const [o, n] of [[0, 4096], [1, 4095], [3, 8997], [0, 0]] as const) {
    assert.equal(addon.crc32c(b.subarray(o, o + n)), crc32c(b.subarray(o, o + n)));
  }
  assert.equal(addon.crc32c(b.subarray(100), addon.crc32c(b.subarray(0, 100))), crc32c(b));
});

const ARCHS: TinyArch[] = ["llama", "qwen2", "qwen3"];
const TYPES = [GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q8_0, GgmlType.F32];

test("columns read back equal the source columns (llama, qwen2, qwen3 x Q4_0, Q4_1, Q8_0, F32)", async () => {
  const dir = await tempDir();
  try {
    let k = 0;
    for (const arch of ARCHS) {
      for (const type of TYPES) {
        const groupSize = [1, 2, 4][k++ % 3]!;
        const m = await buildTinyModel(join(dir, `${arch}-${typeName(type)}.gguf`), { arch, type, embdType: GgmlType.Q8_0, tied: arch === "llama" });
        const out = join(dir, `${arch}-${typeName(type)}.flash.gguf`);
        const report = await convertToFlash(defaultBackend(), m.path, out, { groupSize, keepSourceType: true });
        assert.equal(report.groups, Math.ceil(2 / groupSize));
        for (const s of report.sites) {
          assert.equal(s.columnType, typeName(type), `${arch} ${s.site}: source type kept`);
          if (type === GgmlType.F32) assert.equal(s.quantError, 0);
          else assert.ok(s.quantError > 0 && s.quantError < (type === GgmlType.Q8_0 ? 0.01 : 0.1), `${s.site} error ${s.quantError}`);
        }
        await checkConversion(m.path, out);
        const fm = await openFlashModel(out);
        assert.equal(fm.groupSize, groupSize);
        assert.equal(fm.gguf.metadata.get(KEY.sourceName), `${arch}-${typeName(type)}.gguf`);
        // Resident tensors keep their names: norms, biases, qk-norms, embeddings.
        const names = fm.resident.map((t) => t.name);
        assert.ok(names.includes("token_embd.weight") && names.includes("output_norm.weight") && names.includes("blk.1.ffn_norm.weight"));
        assert.equal(names.includes("output.weight"), arch !== "llama");
        if (arch === "qwen2") assert.ok(names.includes("blk.0.attn_k.bias"));
        if (arch === "qwen3") assert.ok(names.includes("blk.1.attn_q_norm.weight"));
        assert.ok(!names.some((n) => /attn_q\.weight|ffn_down\.weight/.test(n)));
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

// A llama-named GGUF with `layers` layers of random weights in `type`; only the tensors and
// keys the converter reads (no tokenizer).
async function buildModel(path: string, o: { layers: number; dim: number; kvDim: number; ffn: number; type: number }): Promise<void> {
  const w = new GgufWriter(path);
  w.set("general.architecture", str("llama")).set("llama.block_count", u32(o.layers));
  const specs: [string, number[]][] = [["token_embd.weight", [o.dim, 8]]];
  for (let l = 0; l < o.layers; l++) {
    specs.push([`blk.${l}.attn_norm.weight`, [o.dim]], [`blk.${l}.attn_q.weight`, [o.dim, o.dim]], [`blk.${l}.attn_k.weight`, [o.dim, o.kvDim]],
      [`blk.${l}.attn_v.weight`, [o.dim, o.kvDim]], [`blk.${l}.attn_output.weight`, [o.dim, o.dim]], [`blk.${l}.ffn_norm.weight`, [o.dim]],
      [`blk.${l}.ffn_gate.weight`, [o.dim, o.ffn]], [`blk.${l}.ffn_up.weight`, [o.dim, o.ffn]], [`blk.${l}.ffn_down.weight`, [o.ffn, o.dim]]);
  }
  specs.push(["output_norm.weight", [o.dim]]);
  const typeOf = (dims: number[]): number => (dims.length === 1 ? GgmlType.F32 : o.type);
  for (const [name, dims] of specs) w.addTensor({ name, dims, type: typeOf(dims) });
  let seed = 12345;
  await w.write((t) => {
    const n = t.dims.reduce((a, b) => a * b, 1);
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      x[i] = (seed / 2 ** 32 - 0.5) / Math.sqrt(t.dims[0]!);
    }
    return addon.quantizeRow(t.type, x);
  });
}

test("K-quant source: columns keep Q4_K where n_out fits 256, else the fallback; group size 3 of 5 layers", async () => {
  const dir = await tempDir();
  try {
    const srcPath = join(dir, "k.gguf");
    await buildModel(srcPath, { layers: 5, dim: 256, kvDim: 64, ffn: 512, type: GgmlType.Q4_K });
    const out = join(dir, "k.flash.gguf");
    const report = await convertToFlash(defaultBackend(), srcPath, out, { groupSize: 3, keepSourceType: true });
    assert.deepEqual(report.sites.map((s) => [s.site, s.columnType]),
      [["attn_in", "Q8_0"], ["attn_out", "Q4_K"], ["ffn_in", "Q4_K"], ["ffn_out", "Q4_K"]]);
    // By default a low-bit source gets Q8_0 columns: requantising 4 bits into 4 bits compounds error.
    const outDefault = join(dir, "kd.flash.gguf");
    const rd = await convertToFlash(defaultBackend(), srcPath, outDefault, { groupSize: 3 });
    assert.deepEqual(rd.sites.map((s) => s.columnType), ["Q8_0", "Q8_0", "Q8_0", "Q8_0"]);
    assert.ok(rd.sites.every((s) => s.quantError < 0.02), `Q8_0 columns add little error: ${rd.sites.map((s) => s.quantError).join(", ")}`);
    assert.equal(report.groups, 2);
    const fm = await openFlashModel(out);
    assert.deepEqual(fm.extents.filter((e) => e.site === "ffn_in").map((e) => [e.firstLayer, e.layers]), [[0, 3], [3, 2]]);
    await checkConversion(srcPath, out);

    const out4 = join(dir, "k4.flash.gguf");
    const r4 = await convertToFlash(defaultBackend(), srcPath, out4, { groupSize: 4, fallbackType: GgmlType.Q4_0 });
    assert.equal(r4.sites[0]!.columnType, "Q4_0");
    await checkConversion(srcPath, out4);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("--column-type forces one type; a type that does not fit the columns is refused", async () => {
  const dir = await tempDir();
  try {
    const m = await buildTinyModel(join(dir, "t.gguf"), { type: GgmlType.Q4_1 });
    const out = join(dir, "t.flash.gguf");
    const report = await convertToFlash(defaultBackend(), m.path, out, { columnType: GgmlType.Q8_0, groupSize: 2 });
    assert.ok(report.sites.every((s) => s.columnType === "Q8_0"));
    await checkConversion(m.path, out);
    await assert.rejects(convertToFlash(defaultBackend(), m.path, join(dir, "x.gguf"), { columnType: GgmlType.Q4_K }),
      (e) => isActiveflowError(e) && e.code === "BAD_ARGUMENT" && /Q4_K needs column lengths that are multiples of 256, but site attn_in has 64, 32, 32/.test(e.message));
    await assert.rejects(convertToFlash(defaultBackend(), out, join(dir, "y.gguf")),
      (e) => isActiveflowError(e) && e.code === "BAD_ARGUMENT" && /already in the flash layout/.test(e.message));
    await assert.rejects(openFlashModel(m.path),
      (e) => isActiveflowError(e) && e.code === "GGUF_BAD_VALUE" && /not a flash-layout model/.test(e.message));
    await assert.rejects(convertToFlash(defaultBackend(), m.path, m.path), /output .* is the input model/);
    assert.ok(!existsSync(join(dir, "x.gguf")) && !existsSync(join(dir, "y.gguf")));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("a flipped byte in an extent is caught, naming the extent and the page's file offset", async () => {
  const dir = await tempDir();
  try {
    const m = await buildTinyModel(join(dir, "t.gguf"), { type: GgmlType.Q8_0 });
    const out = join(dir, "t.flash.gguf");
    // Requantised Q8_0 columns: their extents end inside a page (the padding check below needs
    // that; split extents of this model are whole pages).
    await convertToFlash(defaultBackend(), m.path, out, { groupSize: 1, columnType: GgmlType.Q8_0 });
    const fm = await openFlashModel(out);
    const e = flashExtent(fm, 1, "ffn_in");
    assert.ok(e.pages >= 3);
    // Pages read from a good file pass the reader's check.
    const good = await readFile(out);
    checkExtentPages(fm, e, 1, good.subarray(e.offset + 4096, e.offset + 3 * 4096));
    const fh = await open(out, "r+");
    try {
      const b = Buffer.alloc(1);
      await fh.read(b, 0, 1, e.offset + 5000);
      b[0] = b[0]! ^ 0x10;
      await fh.write(b, 0, 1, e.offset + 5000);
    } finally {
      await fh.close();
    }
    const pageAt = e.offset + 4096;
    await assert.rejects(verifyFlashFile(out), (err) => isActiveflowError(err) && err.code === "FLASH_CHECKSUM" &&
      err.message.includes(`extent af.g1.ffn_in: page 1 at file offset ${pageAt}`) && /fails its CRC-32C check/.test(err.message));
    const bad = await readFile(out);
    assert.throws(() => checkExtentPages(fm, e, 1, bad.subarray(pageAt, pageAt + 4096)), /af\.g1\.ffn_in: page 1/);
    // Record reads check the pages they cover: records of page 0 still read, page 1's fail.
    const rh = await open(out, "r");
    try {
      const perPage = Math.floor(4096 / e.recordBytes);
      const ok = await readExtentRecords(fm, rh, e, 1, perPage);
      assert.ok(Buffer.from(ok).equals(good.subarray(e.offset + e.recordBytes, e.offset + perPage * e.recordBytes)));
      const last = await readExtentRecords(fm, rh, e, e.nIn - 3, e.nIn);
      assert.ok(Buffer.from(last).equals(good.subarray(e.offset + (e.nIn - 3) * e.recordBytes, e.offset + e.bytes)));
      await assert.rejects(readExtentRecords(fm, rh, e, perPage, perPage + 40), /af\.g1\.ffn_in: page 1 at file offset/);
      await assert.rejects(readExtentRecords(fm, rh, e, 5, 5), /records \[5, 5\) are not inside/);
    } finally {
      await rh.close();
    }
    // Pages are whole file pages: the zero padding after an extent's last record is covered.
    await writeFile(out, good);
    const padAt = e.offset + e.bytes + 10;
    assert.ok(e.bytes % 4096 !== 0 && padAt < e.offset + e.pages * 4096);
    const ph = await open(out, "r+");
    try {
      await ph.write(Buffer.from([0x5a]), 0, 1, padAt);
    } finally {
      await ph.close();
    }
    const lastPage = e.pages - 1;
    await assert.rejects(verifyFlashFile(out), (err) => isActiveflowError(err) && err.code === "FLASH_CHECKSUM" &&
      err.message.includes(`extent af.g1.ffn_in: page ${lastPage} at file offset ${e.offset + lastPage * 4096}`));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("an aborted conversion leaves nothing at the target", async () => {
  const dir = await tempDir();
  try {
    const m = await buildTinyModel(join(dir, "t.gguf"), { type: GgmlType.Q4_0 });
    const out = join(dir, "t.flash.gguf");
    await writeFile(join(dir, "keep"), "x");
    const ac = new AbortController();
    const seen: number[] = [];
    await assert.rejects(
      convertToFlash(defaultBackend(), m.path, out, { groupSize: 1, signal: ac.signal, onProgress: (f) => {
        seen.push(f);
        if (f > 0.5) ac.abort();
      } }),
      (e) => isActiveflowError(e) && e.code === "ABORTED");
    assert.ok(seen.some((f) => f > 0.5) && seen.every((f) => f < 1), `aborted mid-way (progress ${seen.map((f) => f.toFixed(2)).join(" ")})`);
    assert.deepEqual((await readdir(dir)).sort(), ["keep", "t.gguf"]);
    // Progress rises to 1 on a full run.
    const fractions: number[] = [];
    await convertToFlash(defaultBackend(), m.path, out, { groupSize: 1, onProgress: (f) => fractions.push(f) });
    assert.equal(fractions.at(-1), 1);
    assert.ok(fractions.every((f, i) => i === 0 || f >= fractions[i - 1]!));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("calibration keys go into the header room in place; tensor data does not move", async () => {
  const dir = await tempDir();
  try {
    const m = await buildTinyModel(join(dir, "t.gguf"), { type: GgmlType.Q4_0 });
    const out = join(dir, "t.flash.gguf");
    await convertToFlash(defaultBackend(), m.path, out, { groupSize: 1 });
    const before = await openFlashModel(out);
    const size = (await stat(out)).size;
    const data = (await readFile(out)).subarray(before.gguf.dataOffset);
    const th = new Map(SITES.map((s, i) => [`${KEY.thresholdsPrefix}${s}`, f32Arr([0.5 + i, 0.25 + i])]));
    const { roomLeft } = await updateFlashMetadata(out, th);
    assert.ok(roomLeft > 60_000 && roomLeft < 65_536);
    const after = await openFlashModel(out);
    assert.equal(after.gguf.dataOffset, before.gguf.dataOffset);
    assert.equal((await stat(out)).size, size);
    assert.ok((await readFile(out)).subarray(after.gguf.dataOffset).equals(data));
    assert.deepEqual(after.gguf.metadata.get(`${KEY.thresholdsPrefix}ffn_in`), [2.5, 2.25]);
    assert.equal(after.gguf.metadata.get("tokenizer.ggml.pre"), before.gguf.metadata.get("tokenizer.ggml.pre"));
    assert.deepEqual(after.gguf.tensors, before.gguf.tensors);
    // Replacing keys keeps them in place; the room grows back when values shrink.
    const again = await updateFlashMetadata(out, new Map([[`${KEY.thresholdsPrefix}ffn_in`, f32Arr([1])]]));
    assert.equal(again.roomLeft, roomLeft + 4);
    assert.deepEqual((await readGguf(out)).metadata.get(`${KEY.thresholdsPrefix}ffn_in`), [1]);
    await verifyFlashFile(out);
    // More than the room: refused, file untouched.
    const whole = await readFile(out);
    await assert.rejects(updateFlashMetadata(out, new Map([["activeflow.big", f32Arr(new Float32Array(20_000))]])),
      (e) => isActiveflowError(e) && e.code === "BAD_ARGUMENT" && /needs \d+ bytes more than the \d+-byte activeflow.reserved room/.test(e.message));
    assert.ok((await readFile(out)).equals(whole));
    await assert.rejects(updateFlashMetadata(m.path, th), /no activeflow.reserved header room/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
