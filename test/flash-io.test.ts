// Flash I/O layer: random unaligned ranges read back byte-exact through io_uring and the pread
// pool, direct and buffered; coalescing plans; page checksums; CRC-32C vectors on both paths.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadAddon } from "../src/backends/native/binding.js";
import { isActiveflowError } from "../src/errors.js";
import type { FlashHandle, IoBackendName } from "../src/backends/native/ioTypes.js";

const addon = loadAddon();
const PAGE = 4096;
const TMPFS_MAGIC = 0x01021994;

// Not /tmp: it may be tmpfs, which refuses O_DIRECT and would hide the direct path.
const dir = mkdtempSync(join(existsSync("/var/tmp") ? "/var/tmp" : process.cwd(), "activeflow-flash-io-"));
process.on("exit", () => rmSync(dir, { recursive: true, force: true }));

// Deterministic bytes (xorshift32), so a failure reproduces.
function pseudoRandom(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = s & 0xff;
  }
  return out;
}

function rng(seed: number): (n: number) => number {
  let s = seed >>> 0 || 1;
  return (n) => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s % n;
  };
}

// 4 MiB plus an odd tail, so the last page is partial.
const FILE_SIZE = 4 * 1024 * 1024 + 1234;
const content = pseudoRandom(FILE_SIZE, 0xac71f10);
const filePath = join(dir, "weights.bin");
writeFileSync(filePath, content);

function pageCrcs(bytes: Uint8Array): Uint32Array {
  const pages = Math.ceil(bytes.length / PAGE);
  const out = new Uint32Array(pages);
  for (let i = 0; i < pages; i++) out[i] = addon.crc32c(bytes.subarray(i * PAGE, Math.min((i + 1) * PAGE, bytes.length)));
  return out;
}

function expectBytes(data: Uint8Array, offsets: ArrayLike<number>, lengths: Uint32Array, source: Uint8Array): void {
  let at = 0;
  for (let i = 0; i < lengths.length; i++) {
    const o = Number(offsets[i]), l = lengths[i]!;
    const got = data.subarray(at, at + l), want = source.subarray(o, o + l);
    if (Buffer.compare(got, want) !== 0) assert.fail(`range ${i} [${o}, +${l}) differs from the file`);
    at += l;
  }
  assert.equal(at, data.length);
}

// Random unaligned ranges, plus the awkward ones: EOF tail, empty, larger than maxRead,
// overlapping and duplicated.
function randomRanges(seed: number, n: number): { offsets: Float64Array; lengths: Uint32Array } {
  const r = rng(seed);
  const offsets: number[] = [], lengths: number[] = [];
  for (let i = 0; i < n; i++) {
    const len = 1 + r(i % 5 === 0 ? 200_000 : 9000);
    offsets.push(r(FILE_SIZE - len));
    lengths.push(len);
  }
  offsets.push(FILE_SIZE - 7, 123, 1_000_001, 1_000_001, 5000, 0, FILE_SIZE - 1);
  lengths.push(7, 0, 2_600_000, 2_600_000, 70_000, 1, 1);
  return { offsets: Float64Array.from(offsets), lengths: Uint32Array.from(lengths) };
}

const uringReason =
  addon.ioDefaultBackend() === "io_uring" ? undefined : "io_uring_setup is refused on this system (the pread pool is tested)";
const backends: { backend: Exclude<IoBackendName, "auto">; skip: string | undefined }[] = [
  { backend: "io_uring", skip: uringReason },
  { backend: "pread", skip: undefined },
];

for (const { backend, skip } of backends) {
  for (const direct of [true, false]) {
    test(`${backend}, ${direct ? "direct" : "buffered"}: random unaligned ranges read back byte-exact`, async (t) => {
      if (skip) return t.skip(skip);
      const h = addon.openFlashFile(filePath, { direct, backend });
      try {
        assert.equal(h.size(), FILE_SIZE);
        assert.equal(h.backend(), backend);
        // Direct mode may be refused by the filesystem; the bytes must match either way.
        if (!direct) assert.equal(h.mode(), "buffered");
        for (const [seed, qd, gap] of [[1, 1, 0], [2, 8, 16384], [3, 32, 16384], [4, 32, -1]] as const) {
          const { offsets, lengths } = randomRanges(seed, 300);
          const { data, stats } = await h.readRanges(offsets, lengths, gap, qd);
          expectBytes(data, offsets, lengths, content);
          assert.equal(stats.backend, backend);
          assert.equal(stats.bytesRequested, lengths.reduce((a, b) => a + b, 0));
          assert.ok(stats.bytesRead >= Math.min(stats.bytesRequested, FILE_SIZE) / 4, "bytesRead is counted");
          assert.ok(stats.deviceReads > 0);
        }
        // BigUint64Array offsets work the same.
        const lengths = Uint32Array.from([10, 4096, 3]);
        const offsets = BigUint64Array.from([4095n, 8192n, BigInt(FILE_SIZE - 3)]);
        const { data } = await h.readRanges(offsets, lengths);
        expectBytes(data, Array.from(offsets, Number), lengths, content);
      } finally {
        h.close();
      }
    });
  }
}

test("ACTIVEFLOW_IO_BACKEND=pread makes auto pick the pread pool, as when io_uring is refused", async () => {
  const before = process.env.ACTIVEFLOW_IO_BACKEND;
  process.env.ACTIVEFLOW_IO_BACKEND = "pread";
  try {
    assert.equal(addon.ioDefaultBackend(), "pread");
    const h = addon.openFlashFile(filePath);
    const { offsets, lengths } = randomRanges(9, 50);
    const { data, stats } = await h.readRanges(offsets, lengths);
    assert.equal(stats.backend, "pread");
    expectBytes(data, offsets, lengths, content);
    h.close();
  } finally {
    if (before === undefined) delete process.env.ACTIVEFLOW_IO_BACKEND;
    else process.env.ACTIVEFLOW_IO_BACKEND = before;
  }
});

test("when the filesystem refuses O_DIRECT the file falls back to buffered reads", async () => {
  const before = process.env.ACTIVEFLOW_FLASH_REFUSE_DIRECT;
  process.env.ACTIVEFLOW_FLASH_REFUSE_DIRECT = "1";
  let h: FlashHandle;
  try {
    h = addon.openFlashFile(filePath, { direct: true });
  } finally {
    if (before === undefined) delete process.env.ACTIVEFLOW_FLASH_REFUSE_DIRECT;
    else process.env.ACTIVEFLOW_FLASH_REFUSE_DIRECT = before;
  }
  assert.equal(h.mode(), "buffered");
  const { offsets, lengths } = randomRanges(21, 100);
  const { data } = await h.readRanges(offsets, lengths);
  expectBytes(data, offsets, lengths, content);
  h.close();
});

test("tmpfs files read back byte-exact in whichever mode the kernel grants", async (t) => {
  const shm = "/dev/shm";
  if (!existsSync(shm) || statfsSync(shm).type !== TMPFS_MAGIC) return t.skip("no tmpfs at /dev/shm");
  const sub = mkdtempSync(join(shm, "activeflow-flash-io-"));
  try {
    const p = join(sub, "small.bin");
    const bytes = pseudoRandom(50_000, 77);
    writeFileSync(p, bytes);
    const h = addon.openFlashFile(p, { direct: true });
    t.diagnostic(`tmpfs O_DIRECT: ${h.mode()} (Linux >= 6.6 accepts it)`);
    const offsets = Float64Array.from([1, 4097, 49_990]), lengths = Uint32Array.from([100, 9000, 10]);
    const { data } = await h.readRanges(offsets, lengths);
    expectBytes(data, offsets, lengths, bytes);
    h.close();
  } finally {
    rmSync(sub, { recursive: true, force: true });
  }
});

test("coalescing merges ranges within maxGap, caps reads at maxRead, never reads past EOF", () => {
  const plan = (offs: number[], lens: number[], gap: number, maxRead = 1 << 20, size = FILE_SIZE) => {
    const p = addon.planFlashReads(Float64Array.from(offs), Uint32Array.from(lens), gap, maxRead, size);
    return Array.from(p.offsets, (o, i) => [o, p.lengths[i]!]);
  };
  // Gap between page-widened extents: [0, 4096) and [20480, 24576) are 16 KiB apart.
  assert.deepEqual(plan([100, 20480], [10, 100], 16384), [[0, 24576]]);
  assert.deepEqual(plan([100, 20481 + 4096], [10, 100], 16384), [[0, 4096], [24576, 4096]]);
  // Input order does not matter; overlapping and contained ranges share reads.
  assert.deepEqual(plan([9000, 100, 150], [10, 10_000, 10], 0), [[0, 12288]]);
  // Negative gap: no merging, even of adjacent pages.
  assert.deepEqual(plan([0, 4096], [4096, 4096], -1), [[0, 4096], [4096, 4096]]);
  assert.deepEqual(plan([0, 4096], [4096, 4096], 0), [[0, 8192]]);
  // Merging stops at maxRead; one long range splits into maxRead pieces.
  assert.deepEqual(plan([0, 8192, 16384], [100, 100, 100], 16384, 16384), [[0, 12288], [16384, 4096]]);
  assert.deepEqual(plan([1], [40000], 0, 16384), [[0, 16384], [16384, 16384], [32768, 8192]]);
  // The tail read ends at the page holding EOF, not beyond it.
  const tail = plan([FILE_SIZE - 5], [5], 16384);
  const eofPage = Math.ceil(FILE_SIZE / PAGE) * PAGE;
  assert.deepEqual(tail, [[eofPage - PAGE, PAGE]]);
  // Every plan of random ranges stays inside [0, eofPage) with sorted, disjoint, aligned reads.
  const { offsets, lengths } = randomRanges(5, 500);
  const p = addon.planFlashReads(offsets, lengths, 16384, 1 << 20, FILE_SIZE);
  let end = 0;
  for (let i = 0; i < p.offsets.length; i++) {
    const o = p.offsets[i]!, l = p.lengths[i]!;
    assert.ok(o % PAGE === 0 && l % PAGE === 0 && l > 0 && l <= 1 << 20, `read ${i} [${o}, +${l}) is aligned and capped`);
    assert.ok(o >= end, `read ${i} starts after the previous one ended`);
    end = o + l;
  }
  assert.ok(end <= eofPage);
  assert.throws(
    () => addon.planFlashReads(Float64Array.from([FILE_SIZE - 2]), Uint32Array.from([3]), 0, 1 << 20, FILE_SIZE),
    (e: Error & { code?: string }) => e.code === "BAD_ARGUMENT" && /ends past the file size 4195538/.test(e.message),
  );
});

test("native errors are ActiveflowErrors made by the addon itself, sync and async, with their code and message", async () => {
  // Straight from the addon, no backend wrapper in between: the class is set once at load.
  assert.throws(
    () => addon.planFlashReads(Float64Array.from([FILE_SIZE - 2]), Uint32Array.from([3]), 0, 1 << 20, FILE_SIZE),
    (e: unknown) => isActiveflowError(e) && e.code === "BAD_ARGUMENT" && e.name === "ActiveflowError" && /ends past the file size/.test(e.message),
  );
  // Async work rejects with one too (a read on a worker thread that cannot open its file).
  await assert.rejects(
    addon.probeDevice(join(dir, "no-such-file"), { blockBytes: 4096, queueDepth: 1, seconds: 0.01 }),
    (e: unknown) => isActiveflowError(e) && e.code === "FLASH_IO" && e.message !== "",
  );
});

test("with a read-cost curve, ranges share a read exactly when one read of the span costs less than two", () => {
  // A device where a read costs 10 us up to 16 KiB, then 1 us per further 4 KiB (bandwidth-bound).
  const cost = { bytes: [4096, 16384, 1 << 20], seconds: [10e-6, 10e-6, 10e-6 + ((1 << 20) - 16384) / 4096 * 1e-6] };
  const plan = (offs: number[], lens: number[]) => {
    const p = addon.planFlashReads(Float64Array.from(offs), Uint32Array.from(lens), 0, 1 << 20, FILE_SIZE, cost);
    return Array.from(p.offsets, (o, i) => [o, p.lengths[i]!]);
  };
  // Two pages 8 KiB apart: one 16 KiB read (10 us) beats two 4 KiB reads (20 us).
  assert.deepEqual(plan([0, 12288], [100, 100]), [[0, 16384]]);
  // Far apart: the span (1 MiB, ~260 us) costs more than two reads.
  assert.deepEqual(plan([0, (1 << 20) - 4096], [100, 100]), [[0, 4096], [(1 << 20) - 4096, 4096]]);
  // The cost of the plan is what readCostSeconds prices.
  assert.ok(Math.abs(addon.readCostSeconds(cost, Uint32Array.from([16384])) - 10e-6) < 1e-12);
  assert.throws(() => addon.planFlashReads(Float64Array.from([0]), Uint32Array.from([1]), 0, 1 << 20, FILE_SIZE, { bytes: [8192, 4096], seconds: [1, 1] }),
    (e: Error & { code?: string }) => e.code === "BAD_ARGUMENT" && /strictly rising/.test(e.message));
  assert.throws(() => addon.planFlashReads(Float64Array.from([0]), Uint32Array.from([1]), 0, 1 << 20, FILE_SIZE, { bytes: [4096], seconds: [0] }),
    (e: Error & { code?: string }) => e.code === "BAD_ARGUMENT" && /positive size and time/.test(e.message));
});

test("probeDevice: random aligned reads at a fixed depth report throughput and latency; bad options name the field", async () => {
  const r = await addon.probeDevice(filePath, { blockBytes: 8192, queueDepth: 4, seconds: 0.05, warmupSeconds: 0.01 });
  assert.ok(r.reads > 0 && r.bytes === r.reads * 8192, `${r.reads} reads of 8 KiB, ${r.bytes} bytes`);
  assert.ok(r.p50LatencyUs > 0 && r.p99LatencyUs >= r.p50LatencyUs);
  await assert.rejects(addon.probeDevice(filePath, { blockBytes: 1000, queueDepth: 4, seconds: 0.05 }),
    (e: Error & { code?: string }) => e.code === "BAD_ARGUMENT" && /probe block size 1000/.test(e.message));
  await assert.rejects(addon.probeDevice(filePath, { blockBytes: 4096, queueDepth: 0, seconds: 0.05 }),
    (e: Error & { code?: string }) => e.code === "BAD_ARGUMENT" && /probe queue depth 0/.test(e.message));
});

test("device reads and bytes follow the plan; a read at EOF returns only the file's bytes", async () => {
  const h = addon.openFlashFile(filePath);
  try {
    const offsets = Float64Array.from([100, 20480, 1_000_000, FILE_SIZE - 5]);
    const lengths = Uint32Array.from([10, 100, 10, 5]);
    const { data, stats } = await h.readRanges(offsets, lengths, 16384, 4);
    expectBytes(data, offsets, lengths, content);
    assert.equal(stats.deviceReads, 3);
    const tailBytes = FILE_SIZE - (Math.floor((FILE_SIZE - 5) / PAGE) * PAGE);
    assert.equal(stats.bytesRead, 24576 + 4096 + tailBytes);
  } finally {
    h.close();
  }
});

for (const { backend, skip } of backends) {
  test(`${backend}: a corrupted page fails its checksum and the error names its file offset`, async (t) => {
    if (skip) return t.skip(skip);
    const base = 64 * PAGE;
    const region = content.subarray(base);
    const crcs = pageCrcs(region);
    const corruptPage = 100; // file offset base + 100 pages
    const bad = content.slice();
    const flip = base + corruptPage * PAGE + 17;
    bad[flip] = bad[flip]! ^ 0x40;
    const p = join(dir, `corrupt-${backend}.bin`);
    writeFileSync(p, bad);
    const h = addon.openFlashFile(p, { backend });
    try {
      // Ranges that avoid the page pass, and their pages are checked.
      const okOff = Float64Array.from([base + 5, base + 50 * PAGE + 3, FILE_SIZE - 9]);
      const okLen = Uint32Array.from([5000, 20000, 9]);
      const ok = await h.readRanges(okOff, okLen, 0, 8, { checksums: crcs, checksumBase: base });
      expectBytes(ok.data, okOff, okLen, content);
      assert.ok(ok.stats.pagesVerified >= 3);
      // Ranges before the region are not checked.
      const before = await h.readRanges(Float64Array.from([0]), Uint32Array.from([PAGE]), 0, 8, { checksums: crcs, checksumBase: base });
      assert.equal(before.stats.pagesVerified, 0);
      const offset = base + corruptPage * PAGE;
      await assert.rejects(
        h.readRanges(Float64Array.from([offset - 100, base]), Uint32Array.from([200, 10]), 16384, 8, {
          checksums: crcs,
          checksumBase: base,
        }),
        (e: Error & { code?: string }) =>
          e.code === "FLASH_CHECKSUM" && e.message.includes(`page at file offset ${offset} `) && e.message.includes(p),
      );
      // The reader is still usable after a failed batch.
      const again = await h.readRanges(okOff, okLen, 0, 8);
      expectBytes(again.data, okOff, okLen, content);
      await assert.rejects(
        h.readRanges(okOff, okLen, 0, 8, { checksums: crcs, checksumBase: base + 1 }),
        (e: Error & { code?: string }) => e.code === "BAD_ARGUMENT" && /multiple of 4096/.test(e.message),
      );
    } finally {
      h.close();
    }
  });
}

test("crc32c matches the standard vectors on the hardware and table paths", (t) => {
  const enc = (s: string) => new TextEncoder().encode(s);
  const ascending = Uint8Array.from({ length: 32 }, (_, i) => i);
  const vectors: [Uint8Array, number][] = [
    [enc("123456789"), 0xe3069283],
    [new Uint8Array(0), 0],
    [new Uint8Array(32), 0x8a9136aa], // RFC 3720 B.4
    [new Uint8Array(32).fill(0xff), 0x62a8ab43],
    [ascending, 0x46dd794e],
  ];
  const info = addon.crc32cInfo();
  const paths: ("scalar" | "hw")[] = info.hw ? ["scalar", "hw"] : ["scalar"];
  if (!info.hw) t.diagnostic("no SSE4.2 crc32 on this CPU: hardware path not tested");
  for (const path of paths) {
    for (const [bytes, want] of vectors) assert.equal(addon.crc32c(bytes, 0, path), want, `${path} crc32c of ${bytes.length} bytes`);
    // Chaining through the seed equals one pass over the concatenation.
    const whole = addon.crc32c(enc("123456789"), 0, path);
    assert.equal(addon.crc32c(enc("6789"), addon.crc32c(enc("12345"), 0, path), path), whole);
  }
  // Both paths agree on every length and misalignment (head/tail handling).
  const bytes = pseudoRandom(5000, 3);
  for (let start = 0; start < 9; start++) {
    for (const len of [0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 1000, 4096]) {
      const v = bytes.subarray(start, start + len);
      assert.equal(addon.crc32c(v, 0, "scalar"), addon.crc32c(v), `start ${start} length ${len}`);
      if (info.hw) assert.equal(addon.crc32c(v, 0, "hw"), addon.crc32c(v, 0, "scalar"), `start ${start} length ${len}`);
    }
  }
});

test("batches run off the event loop and concurrent calls on one handle all complete", async () => {
  const h: FlashHandle = addon.openFlashFile(filePath);
  try {
    // 1000 unmerged single-page reads at queue depth 1: long enough for timers to fire.
    const r = rng(11);
    const n = 1000;
    const offsets = Float64Array.from({ length: n }, () => r(Math.floor(FILE_SIZE / PAGE)) * PAGE);
    const lengths = new Uint32Array(n).fill(PAGE);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    const pending = h.readRanges(offsets, lengths, -1, 1);
    const { data } = await pending;
    clearInterval(timer);
    assert.ok(ticks > 0, "a timer fired while the batch was reading");
    expectBytes(data, offsets, lengths, content);
    const batches = [1, 2, 3, 4].map((s) => randomRanges(100 + s, 100));
    const results = await Promise.all(batches.map((b) => h.readRanges(b.offsets, b.lengths)));
    results.forEach((res, i) => expectBytes(res.data, batches[i]!.offsets, batches[i]!.lengths, content));
  } finally {
    h.close();
  }
});

test("page-aligned ranges into aligned memory land in place, checked and byte-exact", async () => {
  for (const backend of ["auto", "pread"] as const) {
    const h = addon.openFlashFile(filePath, { backend });
    try {
      const into = addon.allocAligned(64 * PAGE);
      assert.equal(into.length, 64 * PAGE);
      // Three aligned whole-page ranges (in place) and one unaligned range (staged copy).
      const offsets = Float64Array.from([8 * PAGE, 100 * PAGE, 40 * PAGE, 5 * PAGE + 10]);
      const lengths = Uint32Array.from([4 * PAGE, PAGE, 16 * PAGE, 100]);
      const { data, stats } = await h.readRanges(offsets, lengths, -1, 4, { into, checksums: pageCrcs(content) });
      assert.equal(data.buffer, into.buffer);
      expectBytes(data, offsets, lengths, content);
      assert.equal(stats.inPlaceReads, 3);
      assert.equal(stats.pagesVerified, 4 + 1 + 16 + 1);
      // A plain (unaligned) Uint8Array still gets the right bytes, through the staging copy.
      const plain = new Uint8Array(64 * PAGE + 1).subarray(1);
      const copied = await h.readRanges(offsets, lengths, -1, 4, { into: plain });
      expectBytes(copied.data, offsets, lengths, content);
      assert.equal(copied.stats.inPlaceReads, 0);
    } finally {
      h.close();
    }
  }
});

test("errors carry codes and name the file or value", async () => {
  const missing = join(dir, "missing.bin");
  assert.throws(
    () => addon.openFlashFile(missing),
    (e: Error & { code?: string }) => e.code === "FLASH_IO" && e.message.includes(missing),
  );
  assert.throws(
    () => addon.openFlashFile(filePath, { backend: "spdk" as IoBackendName }),
    (e: Error & { code?: string }) => e.code === "BAD_ARGUMENT" && /spdk/.test(e.message),
  );
  const h = addon.openFlashFile(filePath);
  await assert.rejects(
    h.readRanges(Float64Array.from([FILE_SIZE - 1]), Uint32Array.from([2])),
    (e: Error & { code?: string }) => e.code === "BAD_ARGUMENT" && /range 0 \[4195537, \+2\) ends past the file size/.test(e.message),
  );
  assert.throws(
    () => h.readRanges(Float64Array.from([0.5]), Uint32Array.from([2])),
    (e: Error & { code?: string }) => e.code === "BAD_ARGUMENT" && /offsets\[0\]/.test(e.message),
  );
  h.close();
  assert.throws(() => h.mode(), (e: Error & { code?: string }) => e.code === "DISPOSED");
});
