import { test } from "node:test";
import assert from "node:assert/strict";
import { GgmlType } from "../src/gguf/types.js";
import { crc32c } from "../src/flash/crc32c.js";
import {
  CRC_PAGE_BYTES, FLASH_ALIGNMENT, SITES, SITE_TENSORS, computeFlashLayout, extentName, findExtent, recordPages, rowBytes,
  type SiteShape,
} from "../src/flash/format.js";

test("crc32c matches the published check values", () => {
  // RFC 3720 B.4 and the common "123456789" check value of CRC-32C.
  assert.equal(crc32c(new TextEncoder().encode("123456789")), 0xe3069283);
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
  assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
  assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e);
  assert.equal(crc32c(new Uint8Array(0)), 0);
});

test("crc32c continues across chunks and unaligned views", () => {
  const b = Uint8Array.from({ length: 10_001 }, (_, i) => (i * 131 + 7) & 0xff);
  const whole = crc32c(b.subarray(3));
  let c = 0;
  for (let o = 3; o < b.length; o += 997) c = crc32c(b.subarray(o, Math.min(o + 997, b.length)), c);
  assert.equal(c, whole);
  assert.equal(crc32c(Uint8Array.from(b.subarray(3))), whole);
});

// Shapes of a small llama: dim 64, kv dim 32, ffn 128.
function sites(columnType: number): SiteShape[] {
  const nOut = { attn_in: [64, 32, 32], attn_out: [64], ffn_in: [128, 128], ffn_out: [64] } as const;
  return SITES.map((site) => ({ site, nIn: site === "ffn_out" ? 128 : 64, tensors: SITE_TENSORS[site], nOut: nOut[site], columnType }));
}

const resident = [
  { name: "token_embd.weight", dims: [64, 300], type: GgmlType.Q8_0 },
  { name: "output_norm.weight", dims: [64], type: GgmlType.F32 },
];

test("layout: records, sub-offsets, aligned extents and CRC pages", () => {
  const L = computeFlashLayout({ nLayer: 5, groupSize: 2, sites: sites(GgmlType.Q4_0), resident });
  assert.equal(L.groups, 3);
  assert.equal(L.extents.length, 3 * 4);
  assert.deepEqual(L.extents.map((e) => e.name).slice(0, 5),
    ["af.g0.attn_in", "af.g0.attn_out", "af.g0.ffn_in", "af.g0.ffn_out", "af.g1.attn_in"]);
  // Group 2 holds the one leftover layer.
  const last = findExtent(L, 2, "ffn_in");
  assert.equal(last.firstLayer, 4);
  assert.equal(last.layers, 1);
  // attn_in record of a 2-layer group: q, k, v columns of layer 0 then of layer 1.
  const e = findExtent(L, 0, "attn_in");
  const q = rowBytes(GgmlType.Q4_0, 64);
  const kv = rowBytes(GgmlType.Q4_0, 32);
  assert.equal(q, 36);
  assert.deepEqual(e.parts.map((p) => [p.layer, p.tensor, p.offset, p.bytes]), [
    [0, "attn_q", 0, q], [0, "attn_k", q, kv], [0, "attn_v", q + kv, kv],
    [1, "attn_q", q + 2 * kv, q], [1, "attn_k", 2 * q + 2 * kv, kv], [1, "attn_v", 2 * q + 3 * kv, kv],
  ]);
  assert.equal(e.recordBytes, 2 * (q + 2 * kv));
  assert.deepEqual(e.dims, [2 * 128, 64]);
  assert.equal(e.bytes, 64 * e.recordBytes);
  // Every tensor starts on a 4 KiB boundary; tensors do not overlap; CRC pages tile the extents.
  const all = [...L.resident, ...L.extents, L.crc];
  let end = 0;
  let pages = 0;
  for (const t of all) {
    assert.equal(t.dataOffset % FLASH_ALIGNMENT, 0, `${t.name} at ${t.dataOffset}`);
    assert.ok(t.dataOffset >= end);
    end = t.dataOffset + t.bytes;
  }
  for (const x of L.extents) {
    assert.equal(x.firstPage, pages);
    assert.equal(x.pages, Math.ceil(x.bytes / CRC_PAGE_BYTES));
    pages += x.pages;
  }
  assert.equal(L.crc.pages, pages);
  assert.equal(L.crc.bytes, pages * 4);
  assert.equal(L.dataBytes, end);
  assert.equal(extentName(7, "ffn_out"), "af.g7.ffn_out");
});

test("layout: group sizes 1, 3 and 4 cover every layer once", () => {
  for (const groupSize of [1, 3, 4, 9]) {
    const L = computeFlashLayout({ nLayer: 7, groupSize, sites: sites(GgmlType.Q8_0), resident });
    assert.equal(L.groups, Math.ceil(7 / groupSize));
    const layers = L.extents.filter((e) => e.site === "ffn_out").flatMap((e) => e.parts.map((p) => p.layer));
    assert.deepEqual(layers, [0, 1, 2, 3, 4, 5, 6], `group size ${groupSize}`);
    for (const e of L.extents) assert.equal(e.parts.length, e.layers * SITE_TENSORS[e.site].length);
  }
});

test("layout: record pages and bad inputs", () => {
  const L = computeFlashLayout({ nLayer: 2, groupSize: 2, sites: sites(GgmlType.F16), resident });
  const e = findExtent(L, 0, "ffn_in"); // record = 2 layers x 2 x 128 F16 = 1024 bytes
  assert.equal(e.recordBytes, 1024);
  assert.deepEqual(recordPages(e, 0, 4), { first: 0, last: 0 });
  assert.deepEqual(recordPages(e, 3, 5), { first: 0, last: 1 });
  assert.throws(() => computeFlashLayout({ nLayer: 2, groupSize: 0, sites: sites(GgmlType.F16), resident }), /group size 0/);
  assert.throws(() => rowBytes(GgmlType.Q4_K, 64), /not a whole number of Q4_K blocks of 256/);
  assert.throws(() => findExtent(L, 1, "attn_in"), /no extent for group 1/);
});

test("layout, split sites: code parts of the source's types, scale planes between the resident tensors and the extents", () => {
  const base = sites(GgmlType.Q8_0);
  // attn_in split (Q4_1 q, Q4_0 k, Q8_0 v in layer 0; all Q4_0 in layer 1); the rest columns.
  const attnIn: SiteShape = { ...base[0]!, columnType: GgmlType.I8, layout: "split", partTypes: [GgmlType.Q4_1, GgmlType.Q4_0, GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_0, GgmlType.Q4_0] };
  const L = computeFlashLayout({ nLayer: 2, groupSize: 2, sites: [attnIn, ...base.slice(1)], resident });
  const e = findExtent(L, 0, "attn_in");
  assert.equal(e.layout, "split");
  assert.deepEqual(e.parts.map((p) => [p.layer, p.tensor, p.type, p.offset, p.bytes, p.scales]), [
    [0, "attn_q", GgmlType.Q4_1, 0, 32, "af.scales.blk.0.attn_q"], [0, "attn_k", GgmlType.Q4_0, 32, 16, "af.scales.blk.0.attn_k"],
    [0, "attn_v", GgmlType.Q8_0, 48, 32, "af.scales.blk.0.attn_v"], [1, "attn_q", GgmlType.Q4_0, 80, 32, "af.scales.blk.1.attn_q"],
    [1, "attn_k", GgmlType.Q4_0, 112, 16, "af.scales.blk.1.attn_k"], [1, "attn_v", GgmlType.Q4_0, 128, 16, "af.scales.blk.1.attn_v"],
  ]);
  assert.deepEqual([e.columnType, ...e.dims], [GgmlType.I8, 144, 64]);
  // Planes: F16, [n_out, n_in / 32] or [n_out, 2, n_in / 32] (Q4_1: d and m), after the copied tensors.
  assert.deepEqual(L.scales.map((p) => [p.name, p.type, p.dims, p.bytes]), [
    ["af.scales.blk.0.attn_q", GgmlType.F16, [64, 2, 2], 512], ["af.scales.blk.0.attn_k", GgmlType.F16, [32, 2], 128],
    ["af.scales.blk.0.attn_v", GgmlType.F16, [32, 2], 128], ["af.scales.blk.1.attn_q", GgmlType.F16, [64, 2], 256],
    ["af.scales.blk.1.attn_k", GgmlType.F16, [32, 2], 128], ["af.scales.blk.1.attn_v", GgmlType.F16, [32, 2], 128],
  ]);
  // Bytes: codes + planes = the source's: e.g. layer 0 attn_q, Q4_1 64 x 64: 64 * 64 / 32 * 20.
  assert.equal(64 * 32 + 512, (64 * 64 / 32) * 20);
  const order = [...L.resident, ...L.scales, ...L.extents, L.crc].map((t) => t.dataOffset);
  assert.deepEqual(order, [...order].sort((a, b) => a - b));
  assert.ok(L.scales.every((p) => p.dataOffset % FLASH_ALIGNMENT === 0));
  // Checks: the part count, the types, the extent type.
  const bad = (s: Partial<SiteShape>, msg: RegExp) =>
    assert.throws(() => computeFlashLayout({ nLayer: 2, groupSize: 1, sites: [{ ...attnIn, ...s }, ...base.slice(1)], resident }), msg);
  bad({ partTypes: [GgmlType.Q4_0] }, /site attn_in: split columns need 6 part types \(layers x tensors\), got 1/);
  bad({ partTypes: [GgmlType.Q4_0, GgmlType.Q4_K, GgmlType.Q4_0, GgmlType.Q4_0, GgmlType.Q4_0, GgmlType.Q4_0] }, /layer 0 attn_k is Q4_K \[64, 32\], which cannot be split/);
  bad({ columnType: GgmlType.Q4_0 }, /site attn_in: split extents are I8, not Q4_0/);
});
