// CRC-32C (Castagnoli; reflected polynomial 0x82F63B78, init and final xor 0xFFFFFFFF),
// the checksum of iSCSI, ext4 and SSE4.2's crc32 instruction, so any tool can recompute
// the page checksums of a flash file. Slicing-by-8 tables: eight bytes per step.
const POLY = 0x82f63b78;

// TABLES[k * 256 + b]: CRC of byte b followed by k zero bytes.
const TABLES = (() => {
  const t = new Uint32Array(8 * 256);
  for (let b = 0; b < 256; b++) {
    let c = b;
    for (let i = 0; i < 8; i++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t[b] = c >>> 0;
  }
  for (let k = 1; k < 8; k++) {
    for (let b = 0; b < 256; b++) {
      const prev = t[(k - 1) * 256 + b]!;
      t[k * 256 + b] = (prev >>> 8) ^ t[prev & 0xff]!;
    }
  }
  return t;
})();

// CRC-32C of `bytes`; pass a previous result as `crc` to continue a running checksum.
export function crc32c(bytes: Uint8Array, crc = 0): number {
  const t = TABLES;
  let c = ~crc >>> 0;
  let i = 0;
  const n = bytes.length;
  // Whole 32-bit words straight from a Uint32Array view (host little-endian, as on every
  // platform Node runs on); the byte loop handles the unaligned head and the tail.
  while (i < n && (bytes.byteOffset + i) % 4 !== 0) c = t[(c ^ bytes[i++]!) & 0xff]! ^ (c >>> 8);
  const words = Math.floor((n - i) / 8) * 2;
  if (words > 0) {
    const w = new Uint32Array(bytes.buffer, bytes.byteOffset + i, words);
    for (let k = 0; k < words; k += 2) {
      const a = c ^ w[k]!;
      const b = w[k + 1]!;
      c = t[1792 + (a & 0xff)]! ^ t[1536 + ((a >>> 8) & 0xff)]! ^ t[1280 + ((a >>> 16) & 0xff)]! ^ t[1024 + (a >>> 24)]! ^
        t[768 + (b & 0xff)]! ^ t[512 + ((b >>> 8) & 0xff)]! ^ t[256 + ((b >>> 16) & 0xff)]! ^ t[b >>> 24]!;
    }
    i += words * 4;
  }
  for (; i < n; i++) c = t[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

// Checksums of consecutive `pageBytes` pages of `bytes` (the last page may be short),
// written to out[at], out[at + 1], ...
export function crc32cPages(bytes: Uint8Array, pageBytes: number, out: Uint32Array, at: number): void {
  for (let o = 0, k = at; o < bytes.length; o += pageBytes, k++) {
    out[k] = crc32c(bytes.subarray(o, Math.min(o + pageBytes, bytes.length)));
  }
}

// A CRC-32C function: the addon's SSE4.2 one when the caller has it, else crc32c above.
export type Crc32cFn = (bytes: Uint8Array, crc?: number) => number;
