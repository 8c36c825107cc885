// Hot-cache policies for one extent (one (layer, site) with group size 1), replayed on
// active-set traces. A visit is what native ColumnStore::linear sees: the active channels of
// one pass (ascending). Channels hit in a visit are pinned for it (their records are in use),
// so a miss can only replace a channel the visit does not use; a miss that gets no slot is
// read into staging and stays a miss. Misses are handled in ascending channel order, as the
// engine does.
export interface ExtentPolicy {
  // A new sequence from an empty context (the engine restarts its LFU counts there).
  startSequence(): void;
  // One visit of the active channels active[0..n) (ascending) over `rows` tokens; writes the
  // misses (ascending) into `miss` and returns the number of hits.
  visit(active: Int32Array, n: number, rows: number, miss: Int32Array): number;
}

// A min-heap of slots keyed by (key[slot], slot): pops in the order of the engine's sorted
// victim list (ascending count, then slot index).
class SlotHeap {
  private heap: Int32Array;
  size = 0;
  constructor(cap: number, private readonly key: Float64Array) {
    this.heap = new Int32Array(Math.max(1, cap));
  }
  private less(a: number, b: number): boolean {
    const ka = this.key[a]!, kb = this.key[b]!;
    return ka < kb || (ka === kb && a < b);
  }
  // Builds from slots[0..n) in O(n).
  build(slots: Int32Array, n: number): void {
    this.heap.set(slots.subarray(0, n));
    this.size = n;
    for (let i = (n >> 1) - 1; i >= 0; i--) this.down(i);
  }
  peek(): number {
    return this.heap[0]!;
  }
  pop(): number {
    const top = this.heap[0]!;
    this.size--;
    if (this.size > 0) {
      this.heap[0] = this.heap[this.size]!;
      this.down(0);
    }
    return top;
  }
  private down(i: number): void {
    const h = this.heap;
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < this.size && this.less(h[l]!, h[m]!)) m = l;
      if (r < this.size && this.less(h[r]!, h[m]!)) m = r;
      if (m === i) return;
      const t = h[i]!;
      h[i] = h[m]!;
      h[m] = t;
      i = m;
    }
  }
}

// Frequency policies share the slot bookkeeping: a score per channel, victims = unpinned
// slots by ascending score; a miss takes a free slot, or the lowest-scored victim when
// `admit` says so.
abstract class ScoredCache implements ExtentPolicy {
  protected slotOf: Int32Array;
  protected chanOf: Int32Array;
  protected stamp: Float64Array;
  protected slotKey: Float64Array;
  protected used = 0;
  protected visitId = 0;
  private heap: SlotHeap;
  private scratch: Int32Array;
  private hit: Uint8Array;
  constructor(nIn: number, protected readonly cap: number) {
    this.slotOf = new Int32Array(nIn).fill(-1);
    this.chanOf = new Int32Array(Math.max(1, cap)).fill(-1);
    this.stamp = new Float64Array(Math.max(1, cap));
    this.slotKey = new Float64Array(Math.max(1, cap));
    this.heap = new SlotHeap(cap, this.slotKey);
    this.scratch = new Int32Array(Math.max(1, cap));
    this.hit = new Uint8Array(nIn);
  }
  abstract startSequence(): void;
  // Called for every active channel before hits are counted (the engine counts first).
  protected abstract touch(j: number, rows: number): void;
  protected abstract score(j: number): number;
  // Whether a miss with score s replaces a victim with score v.
  protected abstract admit(s: number, v: number): boolean;
  protected beginVisit(rows: number): void {}

  visit(active: Int32Array, n: number, rows: number, miss: Int32Array): number {
    const visit = ++this.visitId;
    this.beginVisit(rows);
    let hits = 0;
    for (let i = 0; i < n; i++) {
      const j = active[i]!;
      this.touch(j, rows);
      const s = this.slotOf[j]!;
      if (s >= 0) {
        this.stamp[s] = visit;
        this.hit[i] = 1;
        hits++;
      } else this.hit[i] = 0;
    }
    let m = 0, heapReady = false;
    for (let i = 0; i < n; i++) {
      if (this.hit[i]) continue;
      const j = active[i]!;
      miss[m++] = j;
      let slot = -1;
      if (this.used < this.cap) slot = this.used++;
      else if (this.cap > 0) {
        if (!heapReady) {
          let k = 0;
          for (let s = 0; s < this.cap; s++) {
            if (this.stamp[s] !== visit) {
              this.slotKey[s] = this.score(this.chanOf[s]!);
              this.scratch[k++] = s;
            }
          }
          this.heap.build(this.scratch, k);
          heapReady = true;
        }
        if (this.heap.size > 0 && this.admit(this.score(j), this.slotKey[this.heap.peek()]!)) {
          slot = this.heap.pop();
          this.slotOf[this.chanOf[slot]!] = -1;
        }
      }
      if (slot >= 0) {
        this.chanOf[slot] = j;
        this.slotOf[j] = slot;
        this.stamp[slot] = visit;
      }
    }
    return hits;
  }
}

// Today's engine (native ColumnStore): counts of uses in this sequence, restarted when a
// sequence starts from an empty context; a miss replaces the least-used unpinned channel only
// if its own count (this visit included) is higher.
export class EngineLfu extends ScoredCache {
  private count: Float64Array;
  constructor(nIn: number, cap: number) {
    super(nIn, cap);
    this.count = new Float64Array(nIn);
    // A cache that holds the whole extent is filled in one read at its first visit (native
    // ColumnStore::linear): every lookup hits.
    if (cap >= nIn) {
      for (let j = 0; j < nIn; j++) this.slotOf[j] = this.chanOf[j] = j;
      this.used = nIn;
    }
  }
  startSequence(): void {
    this.count.fill(0);
  }
  protected touch(j: number): void {
    this.count[j]!++;
  }
  protected score(j: number): number {
    return this.count[j]!;
  }
  protected admit(s: number, v: number): boolean {
    return v < s;
  }
}

// LFU whose counts decay with a half-life of `halfLife` tokens (Infinity: never forgets, no
// restart per sequence). Scores are kept as sum 2^((t_use - base) / halfLife), rebased before
// they overflow. always: a miss always replaces the lowest-scored victim.
export class DecayLfu extends ScoredCache {
  private value: Float64Array;
  private time = 0;
  private base = 0;
  constructor(nIn: number, cap: number, private readonly halfLife: number, private readonly always = false) {
    super(nIn, cap);
    this.value = new Float64Array(nIn);
  }
  startSequence(): void {}
  protected override beginVisit(rows: number): void {
    this.time += rows;
    if (Number.isFinite(this.halfLife) && (this.time - this.base) / this.halfLife > 600) {
      const shift = Math.pow(2, -(this.time - this.base) / this.halfLife);
      for (let j = 0; j < this.value.length; j++) this.value[j]! *= shift;
      this.base = this.time;
    }
  }
  protected touch(j: number): void {
    this.value[j]! += Number.isFinite(this.halfLife) ? Math.pow(2, (this.time - this.base) / this.halfLife) : 1;
  }
  protected score(j: number): number {
    return this.value[j]!;
  }
  protected admit(s: number, v: number): boolean {
    return this.always || v < s;
  }
}

// Least recently used: a list of slots, most recent at the tail; a miss always replaces the
// head unless the head is pinned (then every slot is).
export class Lru implements ExtentPolicy {
  private slotOf: Int32Array;
  private chanOf: Int32Array;
  private prev: Int32Array;
  private next: Int32Array;
  private stamp: Float64Array;
  private head = -1;
  private tail = -1;
  private used = 0;
  private visitId = 0;
  private hit: Uint8Array;
  constructor(nIn: number, private readonly cap: number) {
    this.slotOf = new Int32Array(nIn).fill(-1);
    const c = Math.max(1, cap);
    this.chanOf = new Int32Array(c).fill(-1);
    this.prev = new Int32Array(c).fill(-1);
    this.next = new Int32Array(c).fill(-1);
    this.stamp = new Float64Array(c);
    this.hit = new Uint8Array(nIn);
  }
  startSequence(): void {}
  private unlink(s: number): void {
    const p = this.prev[s]!, n = this.next[s]!;
    if (p >= 0) this.next[p] = n;
    else this.head = n;
    if (n >= 0) this.prev[n] = p;
    else this.tail = p;
  }
  private append(s: number): void {
    this.prev[s] = this.tail;
    this.next[s] = -1;
    if (this.tail >= 0) this.next[this.tail] = s;
    else this.head = s;
    this.tail = s;
  }
  visit(active: Int32Array, n: number, rows: number, miss: Int32Array): number {
    const visit = ++this.visitId;
    let hits = 0;
    for (let i = 0; i < n; i++) {
      const s = this.slotOf[active[i]!]!;
      if (s >= 0) {
        this.stamp[s] = visit;
        this.unlink(s);
        this.append(s);
        this.hit[i] = 1;
        hits++;
      } else this.hit[i] = 0;
    }
    let m = 0;
    for (let i = 0; i < n; i++) {
      if (this.hit[i]) continue;
      const j = active[i]!;
      miss[m++] = j;
      let slot = -1;
      if (this.used < this.cap) slot = this.used++;
      else if (this.cap > 0 && this.stamp[this.head]! !== visit) {
        slot = this.head;
        this.unlink(slot);
        this.slotOf[this.chanOf[slot]!] = -1;
      }
      if (slot >= 0) {
        this.chanOf[slot] = j;
        this.slotOf[j] = slot;
        this.stamp[slot] = visit;
        this.append(slot);
      }
    }
    return hits;
  }
}

// ARC (Megiddo and Modha 2003): T1 (seen once recently) and T2 (seen at least twice) hold
// cached channels, B1 and B2 remember what each evicted; p, the target size of T1, moves
// toward whichever ghost list is hit. Pinned channels (this visit's hits) are skipped when
// choosing a victim; if both lists' least recent are pinned the miss is not cached.
const T1 = 1, T2 = 2, B1 = 3, B2 = 4;
export class Arc implements ExtentPolicy {
  private where: Uint8Array; // list of each channel, 0 = none
  private prev: Int32Array;
  private next: Int32Array;
  private heads = new Int32Array(5).fill(-1);
  private tails = new Int32Array(5).fill(-1);
  private sizes = new Int32Array(5);
  private pinned: Float64Array;
  private p = 0;
  private visitId = 0;
  private hit: Uint8Array;
  constructor(nIn: number, private readonly cap: number) {
    this.where = new Uint8Array(nIn);
    this.prev = new Int32Array(nIn).fill(-1);
    this.next = new Int32Array(nIn).fill(-1);
    this.pinned = new Float64Array(nIn);
    this.hit = new Uint8Array(nIn);
  }
  startSequence(): void {}
  private remove(j: number): void {
    const l = this.where[j]!;
    const p = this.prev[j]!, n = this.next[j]!;
    if (p >= 0) this.next[p] = n;
    else this.heads[l] = n;
    if (n >= 0) this.prev[n] = p;
    else this.tails[l] = p;
    this.sizes[l]!--;
    this.where[j] = 0;
  }
  private push(j: number, l: number): void {
    this.prev[j] = this.tails[l]!;
    this.next[j] = -1;
    if (this.tails[l]! >= 0) this.next[this.tails[l]!] = j;
    else this.heads[l] = j;
    this.tails[l] = j;
    this.sizes[l]!++;
    this.where[j] = l;
  }
  // Least recent unpinned channel of a cached list, or -1.
  private victimOf(l: number, visit: number): number {
    const h = this.heads[l]!;
    return h >= 0 && this.pinned[h] !== visit ? h : -1;
  }
  // Makes room in the cache (T1 + T2 full) by demoting a channel to its ghost list; false
  // when every candidate is pinned.
  private replace(inB2: boolean, visit: number): boolean {
    const t1 = this.sizes[T1]!;
    const preferT1 = t1 >= 1 && (t1 > this.p || (inB2 && t1 === Math.floor(this.p)));
    const order = preferT1 ? [T1, T2] : [T2, T1];
    for (const l of order) {
      const v = this.victimOf(l, visit);
      if (v >= 0) {
        this.remove(v);
        this.push(v, l === T1 ? B1 : B2);
        return true;
      }
    }
    return false;
  }
  visit(active: Int32Array, n: number, rows: number, miss: Int32Array): number {
    const visit = ++this.visitId;
    let hits = 0;
    for (let i = 0; i < n; i++) {
      const j = active[i]!;
      const l = this.where[j]!;
      if (l === T1 || l === T2) {
        this.remove(j);
        this.push(j, T2);
        this.pinned[j] = visit;
        this.hit[i] = 1;
        hits++;
      } else this.hit[i] = 0;
    }
    const c = this.cap;
    let m = 0;
    for (let i = 0; i < n; i++) {
      if (this.hit[i]) continue;
      const j = active[i]!;
      miss[m++] = j;
      if (c === 0) continue;
      const l = this.where[j]!;
      const full = this.sizes[T1]! + this.sizes[T2]! >= c;
      if (l === B1 || l === B2) {
        const b1 = this.sizes[B1]!, b2 = this.sizes[B2]!;
        if (l === B1) this.p = Math.min(c, this.p + Math.max(b2 / b1, 1));
        else this.p = Math.max(0, this.p - Math.max(b1 / b2, 1));
        if (full && !this.replace(l === B2, visit)) continue;
        this.remove(j);
        this.push(j, T2);
        this.pinned[j] = visit;
        continue;
      }
      // Not remembered at all.
      const l1 = this.sizes[T1]! + this.sizes[B1]!;
      if (l1 >= c) {
        if (this.sizes[T1]! < c) {
          if (full && !this.replace(false, visit)) continue;
          this.remove(this.heads[B1]!);
        } else {
          const v = this.victimOf(T1, visit);
          if (v < 0) continue;
          this.remove(v);
        }
      } else {
        const total = l1 + this.sizes[T2]! + this.sizes[B2]!;
        if (total >= c) {
          if (total >= 2 * c && this.sizes[B2]! > 0) this.remove(this.heads[B2]!);
          if (full && !this.replace(false, visit)) continue;
        }
      }
      this.push(j, T1);
      this.pinned[j] = visit;
    }
    return hits;
  }
}

// A fixed hot set: the first `cap` channels of `ranking` (most active in the calibration
// trace first), loaded once; misses are never cached.
export class StaticSet implements ExtentPolicy {
  private inSet: Uint8Array;
  constructor(nIn: number, cap: number, ranking: Int32Array) {
    this.inSet = new Uint8Array(nIn);
    for (let i = 0; i < Math.min(cap, ranking.length); i++) this.inSet[ranking[i]!] = 1;
  }
  startSequence(): void {}
  visit(active: Int32Array, n: number, rows: number, miss: Int32Array): number {
    let m = 0;
    for (let i = 0; i < n; i++) {
      const j = active[i]!;
      if (!this.inSet[j]) miss[m++] = j;
    }
    return n - m;
  }
}

// A pinned part (the first `pinned` channels of the ranking) and a dynamic part of cap - pinned
// slots run by `inner` over the other channels.
export class StaticPlusDynamic implements ExtentPolicy {
  private inSet: Uint8Array;
  private rest: Int32Array;
  private innerMiss: Int32Array;
  constructor(nIn: number, pinned: number, ranking: Int32Array, private readonly inner: ExtentPolicy) {
    this.inSet = new Uint8Array(nIn);
    for (let i = 0; i < Math.min(pinned, ranking.length); i++) this.inSet[ranking[i]!] = 1;
    this.rest = new Int32Array(nIn);
    this.innerMiss = new Int32Array(nIn);
  }
  startSequence(): void {
    this.inner.startSequence();
  }
  visit(active: Int32Array, n: number, rows: number, miss: Int32Array): number {
    let k = 0;
    for (let i = 0; i < n; i++) {
      const j = active[i]!;
      if (!this.inSet[j]) this.rest[k++] = j;
    }
    const innerHits = this.inner.visit(this.rest, k, rows, this.innerMiss);
    miss.set(this.innerMiss.subarray(0, k - innerHits));
    return n - k + innerHits;
  }
}

// Not a policy: the most hits any cache of `cap` slots can give a visit, min(cap, active).
export class BoundCache implements ExtentPolicy {
  constructor(private readonly cap: number) {}
  startSequence(): void {}
  visit(active: Int32Array, n: number, rows: number, miss: Int32Array): number {
    const hits = Math.min(this.cap, n);
    miss.set(active.subarray(hits, n));
    return hits;
  }
}
