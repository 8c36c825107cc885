// BPE merge ranks without a string per merge: the pair of token ids a merge joins maps to its
// rank through an open-addressing table of typed arrays (0.9 MiB for SmolLM2's 48,900 merges).
// A Map keyed by merge lines kept every merge string and a hash entry on the JS heap: a loaded
// SmolLM2 tokenizer kept 12.1 MiB of RSS with it, 9.8 MiB with this (medians of 5), memory a DRAM
// budget charges (docs/MEMORY.md). Merges whose halves are not both tokens, which GGUF allows,
// stay in a small Map keyed by the merge line.

// Merge-rank key of a pair: the merge line itself ("left right"). Byte-level symbols never
// hold a space (it is mapped to "Ġ"), so the first space after the first char splits it
// back exactly as llama.cpp does.
export function mergeKey(left: string, right: string): string {
  return `${left} ${right}`;
}

export interface MergeLookup {
  // The rank of the merge joining `left` and `right`, or undefined when there is none.
  rank(left: string, right: string): number | undefined;
  readonly size: number;
}

// Slots per merge at least (load factor at most 1/2 keeps linear probes short).
const SLOTS_PER_MERGE = 2;
const EMPTY = -1;

function slotOf(left: number, right: number, mask: number): number {
  let h = Math.imul(left ^ Math.imul(right, 0x85ebca6b), 0x9e3779b1);
  h ^= h >>> 15;
  return h & mask;
}

export class MergeRanks implements MergeLookup {
  size = 0;
  private readonly mask: number;
  private readonly slots: Int32Array; // [slots] the rank held there, EMPTY = free
  private readonly lefts: Int32Array; // [merges] left token id of each rank
  private readonly rights: Int32Array; // [merges] right token id of each rank
  private readonly other = new Map<string, number>(); // mergeKey(left, right) -> rank

  // `merges`: the merge lines in rank order ("left right"); llama.cpp keeps the first rank of a
  // repeated pair, and a line without a space after its first char never matches.
  constructor(merges: readonly string[], private readonly tokenToId: ReadonlyMap<string, number>) {
    let slots = 16;
    while (slots < merges.length * SLOTS_PER_MERGE) slots *= 2;
    this.mask = slots - 1;
    this.slots = new Int32Array(slots).fill(EMPTY);
    this.lefts = new Int32Array(merges.length);
    this.rights = new Int32Array(merges.length);
    merges.forEach((m, rank) => {
      const at = m.indexOf(" ", 1);
      if (at <= 0) return;
      const l = tokenToId.get(m.slice(0, at)), r = tokenToId.get(m.slice(at + 1));
      if (l === undefined || r === undefined) {
        if (!this.other.has(m)) {
          this.other.set(m, rank);
          this.size++;
        }
        return;
      }
      let s = slotOf(l, r, this.mask);
      for (let held = this.slots[s]!; held !== EMPTY; held = this.slots[s]!) {
        if (this.lefts[held] === l && this.rights[held] === r) return; // a repeat: the first rank stays
        s = (s + 1) & this.mask;
      }
      this.slots[s] = rank;
      this.lefts[rank] = l;
      this.rights[rank] = r;
      this.size++;
    });
  }

  rank(left: string, right: string): number | undefined {
    const l = this.tokenToId.get(left), r = this.tokenToId.get(right);
    if (l === undefined || r === undefined) return this.other.size > 0 ? this.other.get(mergeKey(left, right)) : undefined;
    for (let s = slotOf(l, r, this.mask); ; s = (s + 1) & this.mask) {
      const held = this.slots[s]!;
      if (held === EMPTY) return undefined;
      if (this.lefts[held] === l && this.rights[held] === r) return held;
    }
  }
}

// A Map keyed by merge lines (mergeKey) as a lookup: small hand-made rank tables in tests.
export function mapLookup(ranks: ReadonlyMap<string, number>): MergeLookup {
  return { rank: (left, right) => ranks.get(mergeKey(left, right)), size: ranks.size };
}
