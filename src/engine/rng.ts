// Seeded PRNG for sampling: xoshiro128** (Blackman & Vigna) seeded through splitmix32.
// All arithmetic is 32-bit (Math.imul, >>>), so it is fast and needs no BigInt, and the
// same seed gives the same stream on every platform.

function splitmix32(state: number): [next: number, out: number] {
  const s = (state + 0x9e3779b9) | 0;
  let z = s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  z ^= z >>> 16;
  return [s, z >>> 0];
}

export class Rng {
  // xoshiro128** state: four 32-bit words, never all zero.
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  // Seeds up to 2^53 are used in full: the low and high 32-bit halves are both mixed in.
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new RangeError(`Rng seed must be a non-negative safe integer, got ${seed}`);
    }
    const lo = seed >>> 0;
    const hi = Math.floor(seed / 0x1_0000_0000) >>> 0;
    let st = lo ^ Math.imul(hi, 0x27d4eb2d);
    const words: number[] = [];
    for (let i = 0; i < 4; i++) {
      const [next, out] = splitmix32(st);
      st = next;
      words.push(out);
    }
    [this.s0, this.s1, this.s2, this.s3] = words as [number, number, number, number];
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  // Next uniform 32-bit unsigned integer.
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  // Uniform double in [0, 1) with 53 random bits (two draws), so tiny probabilities still
  // get their share.
  nextFloat(): number {
    const a = this.nextU32() >>> 5; // 27 bits
    const b = this.nextU32() >>> 6; // 26 bits
    return (a * 67108864 + b) / 9007199254740992;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

// A seed for callers that did not ask for one (the CLI prints it so a run can be repeated).
export function randomSeed(): number {
  return Math.floor(Math.random() * 0x1_0000_0000);
}
