// A flipped byte in a calibrated flash file's header (issue 14): every byte of the fixed header
// and of the threshold keys, and a dense sample of the other keys, the tensor table, the
// reserved room and the padding, is flipped in turn. Opening the file (openFlashModel, then the calibration table, as
// the engine does) must then fail with one line, or, where the byte changed nothing the reader
// believes (the name of the optional checksum key itself), give exactly the original logits.
// Bytes of the extents are the page checksums' and --verify-reads' (test/cli-flash.test.ts).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, open, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Engine } from "../src/index.js";
import { ActiveflowError } from "../src/errors.js";
import { defaultBackend } from "../src/backends/default.js";
import { convertToFlash } from "../src/flash/convert.js";
import { KEY } from "../src/flash/format.js";
import { openFlashModel } from "../src/flash/open.js";
import { metadataSpans } from "../src/flash/typedMetadata.js";
import { readGguf } from "../src/gguf/reader.js";
import { GgmlType } from "../src/gguf/types.js";
import { calibrate } from "../src/sparsity/calibrate.js";
import { loadCalibration, storeCalibration } from "../src/sparsity/store.js";
import { thresholdsFor } from "../src/sparsity/thresholds.js";
import { synthesizeModel } from "../src/synth/synth.js";

// Every byte of the fixed header and the thresholds' keys; one in DENSE_STRIDE of the other
// keys and the tensor table; one in ZERO_STRIDE of the reserved zeros and the padding (all
// alike to a reader). Each flip opens the file once (a few ms).
const DENSE_STRIDE = 5;
const ZERO_STRIDE = 256;
const PROMPT = [1, 7, 42, 99, 3];

let dir = "";
let flash = "";
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "af-header-flip-"));
  const src = join(dir, "tiny.gguf");
  flash = join(dir, "tiny.af.gguf");
  await synthesizeModel("tiny", GgmlType.Q4_0, src, { seed: 8 });
  await convertToFlash(defaultBackend(), src, flash, { groupSize: 1 });
  const e = await Engine.load(flash, { contextLength: 64 });
  try {
    await storeCalibration(flash, await calibrate(e, { tokensPerPrompt: 16 }));
  } finally {
    await e.dispose();
  }
});
after(() => (dir !== "" ? rm(dir, { recursive: true, force: true }) : undefined));

// Teacher-forced logits at sparsity 0.5 from the file's own table, as bytes.
async function logits(path: string): Promise<Buffer> {
  const e = await Engine.load(path, { contextLength: 64 });
  try {
    const table = await loadCalibration(path);
    assert.ok(table !== undefined, "the table loads");
    e.setThresholds(thresholdsFor(table, 0.5));
    const rows = await e.evaluateLogits(PROMPT);
    return Buffer.concat(rows.map((r) => Buffer.from(r.buffer, r.byteOffset, r.byteLength)));
  } finally {
    await e.dispose();
  }
}

test("a flipped byte anywhere in a flash file's header or thresholds gives a one-line error, never other numbers", async (t) => {
  const reference = await logits(flash);
  const file = await readGguf(flash);
  const header = (await readFile(flash)).subarray(0, file.dataOffset);
  const { spans, end } = metadataSpans(header, flash, file.metadata.size);
  const reserved = spans.find((s) => s.key === KEY.reserved)!;
  const zeroFrom = reserved.start + 8 + KEY.reserved.length + 4 + 4 + 8; // the reserved array's bytes
  // The tensor table ends where its last name, dims, type and offset end; padding follows.
  let tableEnd = end;
  for (const x of file.tensors) tableEnd += 8 + Buffer.byteLength(x.name) + 4 + 8 * x.dims.length + 4 + 8;
  const thresholds = spans.filter((s) => s.key.startsWith("activeflow.thresholds."));
  assert.ok(thresholds.length >= 8, "the table is in the header");
  const thresholdBytes = thresholds.reduce((n, s) => n + s.end - s.start, 0);
  const inThresholds = (i: number) => thresholds.some((s) => i >= s.start && i < s.end);
  const offsets: number[] = [];
  for (let i = 0; i < file.dataOffset; i++) {
    const structured = i < zeroFrom || (i >= reserved.end && i < tableEnd);
    if (i < 24 || inThresholds(i) || (structured && i % DENSE_STRIDE === 0) || i % ZERO_STRIDE === 0) offsets.push(i);
  }

  const fh = await open(flash, "r+");
  const outcome = { error: 0, same: 0 };
  const codes = new Map<string, number>();
  try {
    for (const at of offsets) {
      const original = header[at]!;
      const flipped = original ^ (1 << (at % 8));
      await fh.write(Uint8Array.of(flipped), 0, 1, at);
      try {
        let failed: unknown;
        try {
          await openFlashModel(flash);
          await loadCalibration(flash);
        } catch (e) {
          failed = e;
        }
        if (failed !== undefined) {
          assert.ok(failed instanceof ActiveflowError, `byte ${at}: ${String(failed)}`);
          assert.doesNotMatch(failed.message, /\n/, `byte ${at}`);
          codes.set(failed.code, (codes.get(failed.code) ?? 0) + 1);
          outcome.error++;
        } else {
          assert.deepEqual(await logits(flash), reference, `byte ${at} (0x${original.toString(16)} -> 0x${flipped.toString(16)}) loads and computes other numbers`);
          outcome.same++;
        }
      } finally {
        await fh.write(Uint8Array.of(original), 0, 1, at);
      }
    }
  } finally {
    await fh.close();
  }
  t.diagnostic(`${offsets.length} of ${file.dataOffset} header bytes flipped (${thresholdBytes} of them the thresholds' keys): ` +
    `${outcome.error} errors (${[...codes].map(([c, n]) => `${c} ${n}`).join(", ")}), ${outcome.same} loads with the same logits`);
  assert.ok(outcome.error > 0.99 * offsets.length, "nearly every flip is caught");
});
