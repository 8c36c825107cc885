// Byte-level mutations of a seed file for fast-check: bit flips, overwritten bytes, 64-bit
// lengths set to huge or boundary values, inserted and deleted runs, truncation. Positions lean
// on the header (the first `hot` bytes), where every length and type of a GGUF lives.
import fc from "fast-check";

type Op =
  | { k: "flip"; at: number; bit: number }
  | { k: "set"; at: number; v: number }
  | { k: "u64"; at: number; v: bigint }
  | { k: "insert"; at: number; bytes: Uint8Array }
  | { k: "delete"; at: number; n: number }
  | { k: "truncate"; at: number };

const U64_EDGES = [0n, 1n, 0x7fn, 0xffn, 0xffffn, 0x7fffffffn, 0xffffffffn, 0x100000000n, 2n ** 53n, 2n ** 63n - 1n, 2n ** 64n - 1n];

export function mutation(size: number, hot: number): fc.Arbitrary<Op[]> {
  const at = fc.oneof({ weight: 4, arbitrary: fc.nat({ max: Math.max(0, hot - 1) }) }, { weight: 1, arbitrary: fc.nat({ max: Math.max(0, size - 1) }) });
  const op: fc.Arbitrary<Op> = fc.oneof(
    { weight: 4, arbitrary: fc.record({ k: fc.constant("flip" as const), at, bit: fc.nat({ max: 7 }) }) },
    { weight: 3, arbitrary: fc.record({ k: fc.constant("set" as const), at, v: fc.nat({ max: 255 }) }) },
    { weight: 3, arbitrary: fc.record({ k: fc.constant("u64" as const), at, v: fc.oneof(fc.constantFrom(...U64_EDGES), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })) }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant("insert" as const), at, bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant("delete" as const), at, n: fc.integer({ min: 1, max: 16 }) }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant("truncate" as const), at }) },
  );
  return fc.array(op, { minLength: 1, maxLength: 8 });
}

export function apply(seed: Uint8Array, ops: readonly Op[]): Uint8Array {
  let b = seed;
  for (const o of ops) {
    const at = Math.min(o.at, Math.max(0, b.length - 1));
    switch (o.k) {
      case "flip":
        b = Uint8Array.from(b);
        if (b.length > 0) b[at] = b[at]! ^ (1 << o.bit);
        break;
      case "set":
        b = Uint8Array.from(b);
        if (b.length > 0) b[at] = o.v;
        break;
      case "u64":
        if (at + 8 <= b.length) {
          b = Uint8Array.from(b);
          new DataView(b.buffer).setBigUint64(at, o.v, true);
        }
        break;
      case "insert": {
        const out = new Uint8Array(b.length + o.bytes.length);
        out.set(b.subarray(0, at));
        out.set(o.bytes, at);
        out.set(b.subarray(at), at + o.bytes.length);
        b = out;
        break;
      }
      case "delete": {
        const tail = b.subarray(Math.min(b.length, at + o.n));
        const out = new Uint8Array(at + tail.length);
        out.set(b.subarray(0, at));
        out.set(tail, at);
        b = out;
        break;
      }
      case "truncate":
        b = b.slice(0, at);
        break;
    }
  }
  return b;
}
