// Token masks for schema-constrained decoding. A mask is computed by walking the tokenizer's
// byte trie (src/tokenizer/tokenTrie.ts) from an automaton state, once per distinct state, and
// cached: while the model writes a string or repeats an object's shape the state recurs, so most
// steps cost a lookup and one pass over the logits. (xgrammar and llguidance avoid even the
// first walk per state with precomputed context-independent masks; here a walk prunes every
// subtree whose prefix the automaton rejects, which bounds it to the tokens that could be valid.)
import { ActiveflowError } from "../errors.js";
import type { TokenTrie } from "../tokenizer/tokenTrie.js";
import { dedupe, detached, EXIT, isString, JsonAutomaton, type Frame, type Step } from "./automaton.js";
import type { CompiledSchema } from "./schema.js";

// Masks kept per grammar; beyond it the oldest go (a mask is vocab / 8 bytes: 6 KB for 49k).
const MAX_MASKS = 1024;

interface Mask {
  bits: Int32Array; // [ceil(nVocab / 32)] bit id set: the token may come next
  allowed: number;
  canEnd: boolean;
  // The most bytes any allowed token leaves to close the value: above the tokens remaining,
  // the budget must be checked (Mask for the budget).
  maxAfter: number;
}

// A schema compiled against one tokenizer; shared by generations with the same schema.
export class JsonGrammar {
  readonly automaton: JsonAutomaton;
  private readonly masks = new Map<string, Mask>();
  masksComputed = 0;

  constructor(schema: CompiledSchema, readonly trie: TokenTrie, private readonly stopIds: readonly number[], readonly nVocab: number) {
    this.automaton = new JsonAutomaton(schema);
  }

  // The mask after `states`, where `remaining` more tokens may follow the next one.
  maskFor(states: Frame[], remaining: number): Mask {
    const key = states.length === 1 ? states[0]!.key : states.map((s) => s.key).sort().join("|");
    const full = this.cached(key, states, Infinity);
    if (full.maxAfter <= remaining) return full;
    // Near the end of the budget: only tokens after which the value can still close in time
    // (one token per byte, as every byte is a token of a byte-level vocabulary). When none can,
    // the value cannot be completed anyway and the full mask stands.
    const tight = this.cached(`${key}#${remaining}`, states, remaining);
    return tight.allowed > 0 ? tight : full;
  }

  private cached(key: string, states: Frame[], limit: number): Mask {
    let m = this.masks.get(key);
    if (!m) {
      m = this.compute(states, limit);
      if (this.masks.size >= MAX_MASKS) this.masks.delete(this.masks.keys().next().value!);
      this.masks.set(key, m);
      this.masksComputed++;
    }
    return m;
  }

  private compute(states: Frame[], limit: number): Mask {
    const m = new MaskBuilder(this, limit);
    const top = states[0]!;
    if (states.length === 1 && isString(top) && limit === Infinity) {
      // Inside a string: the tokens that stay in it come from the per-tokenizer walk; only
      // those that close it continue from the parent.
      const inner = stringWalk(this, top);
      m.bits.set(inner.bits);
      m.allowed = inner.allowed;
      const up = [top.up!];
      if (inner.allowed > 0) m.maxAfter = inner.maxClose + top.up!.close;
      for (const node of inner.exits) {
        m.addTokens(node, up);
        m.visit(node, up);
      }
    } else {
      m.visit(0, states);
    }
    const canEnd = states.some((s) => this.automaton.canEnd(s));
    if (canEnd) {
      for (const id of this.stopIds) m.allow(id);
    }
    return { bits: m.bits, allowed: m.allowed, canEnd, maxAfter: m.maxAfter };
  }

  // All stacks after byte b (undefined: none). One stack that a byte leaves unchanged comes
  // back as the same array, so walking a string allocates almost nothing.
  stepAll(states: Frame[], b: number): Frame[] | undefined {
    if (states.length === 1) {
      const s = states[0]!;
      const r = this.automaton.step(s, b);
      if (r === undefined) return undefined;
      if (r === s) return states;
      return Array.isArray(r) ? r : [r];
    }
    const out: Frame[] = [];
    for (const s of states) push(out, this.automaton.step(s, b));
    return out.length === 0 ? undefined : dedupe(out);
  }
}

// Accumulates one mask: a walk of the trie from a state, pruned where the automaton rejects.
class MaskBuilder {
  readonly bits: Int32Array;
  allowed = 0;
  maxAfter = 0;
  private readonly t: TokenTrie;

  constructor(private readonly g: JsonGrammar, private readonly limit: number) {
    this.bits = new Int32Array((g.nVocab + 31) >>> 5);
    this.t = g.trie;
  }

  allow(id: number): void {
    if (id >= this.g.nVocab) return;
    this.bits[id >>> 5]! |= 1 << (id & 31);
    this.allowed++;
  }

  // The tokens ending at trie node `node`, reached in `states`.
  addTokens(node: number, states: Frame[]): void {
    const t = this.t;
    const t0 = t.tokenStart[node]!;
    const t1 = t.tokenStart[node + 1]!;
    if (t1 === t0) return;
    const close = closeOf(states);
    if (close > this.limit) return;
    for (let k = t0; k < t1; k++) this.allow(t.tokenIds[k]!);
    if (close > this.maxAfter) this.maxAfter = close;
  }

  // Every token below trie node `node` that the automaton accepts from `states`.
  visit(node: number, states: Frame[]): void {
    const t = this.t;
    const end = t.childStart[node]! + t.childCount[node]!;
    for (let e = t.childStart[node]!; e < end; e++) {
      const next = this.g.stepAll(states, t.childByte[e]!);
      if (next === undefined) continue;
      const child = t.childNode[e]!;
      this.addTokens(child, next);
      if (t.childCount[child]! > 0) this.visit(child, next);
    }
  }
}

// A string frame walked on its own: the tokens that end inside the string, the most bytes
// they leave to close it, and the trie nodes right after a byte that closed it.
interface StringWalk {
  bits: Int32Array;
  allowed: number;
  maxClose: number;
  exits: number[];
}

// Per tokenizer trie and vocabulary size, by the string frame's own phase.
const stringWalks = new WeakMap<TokenTrie, Map<string, StringWalk>>();

function stringWalk(g: JsonGrammar, f: Frame): StringWalk {
  let byPhase = stringWalks.get(g.trie);
  if (!byPhase) {
    byPhase = new Map();
    stringWalks.set(g.trie, byPhase);
  }
  const key = `${g.nVocab}:${detached(f).key}`;
  let w = byPhase.get(key);
  if (w) return w;
  const m = new MaskBuilder(g, Infinity);
  const exits: number[] = [];
  const t = g.trie;
  const walk = (node: number, states: Frame[]): void => {
    const end = t.childStart[node]! + t.childCount[node]!;
    for (let e = t.childStart[node]!; e < end; e++) {
      const next = g.stepAll(states, t.childByte[e]!);
      if (next === undefined) continue;
      const child = t.childNode[e]!;
      if (next.length === 1 && next[0] === EXIT) {
        exits.push(child);
        continue;
      }
      m.addTokens(child, next);
      if (t.childCount[child]! > 0) walk(child, next);
    }
  };
  walk(0, [detached(f)]);
  w = { bits: m.bits, allowed: m.allowed, maxClose: m.maxAfter, exits };
  byPhase.set(key, w);
  return w;
}

function push(out: Frame[], r: Step): void {
  if (r === undefined) return;
  if (Array.isArray(r)) out.push(...r);
  else out.push(r);
}

function closeOf(states: Frame[]): number {
  let m = Infinity;
  for (const s of states) if (s.close < m) m = s.close;
  return m;
}

// One generation's walk through a grammar: masks the logits before each sample, then follows
// the sampled token.
export class JsonConstraint {
  private states: Frame[];
  private scratch = new Float32Array(0);
  private mask: Mask | undefined;
  // Time spent masking and following tokens, and masks this generation had to compute.
  seconds = 0;
  masksComputed = 0;

  constructor(private readonly grammar: JsonGrammar) {
    this.states = [grammar.automaton.start()];
  }

  // True once the value is complete and nothing but the end may follow.
  get done(): boolean {
    return this.states.every((s) => this.grammar.automaton.mustEnd(s));
  }

  // A copy of `logits` with -Infinity for every token that may not come next: tokens the
  // schema does not allow here, end-of-generation tokens before the value is complete, and,
  // when `remaining` (tokens that may follow this one) runs short, tokens after which the
  // value could no longer be closed in time.
  apply(logits: Float32Array, remaining: number): Float32Array {
    const t0 = performance.now();
    const before = this.grammar.masksComputed;
    const mask = this.grammar.maskFor(this.states, remaining);
    this.masksComputed += this.grammar.masksComputed - before;
    if (mask.allowed === 0) {
      throw new ActiveflowError("TOKENIZER", "no token of this vocabulary can continue the JSON value here (a byte the schema needs has no token)");
    }
    this.mask = mask;
    if (this.scratch.length !== logits.length) this.scratch = new Float32Array(logits.length);
    const x = this.scratch;
    x.set(logits);
    const bits = mask.bits;
    const n = Math.min(x.length, this.grammar.nVocab);
    for (let w = 0; w < bits.length; w++) {
      const m = bits[w]!;
      if (m === -1) continue;
      const base = w << 5;
      const end = Math.min(base + 32, n);
      for (let i = base; i < end; i++) if ((m & (1 << (i & 31))) === 0) x[i] = -Infinity;
    }
    for (let i = n; i < x.length; i++) x[i] = -Infinity;
    this.seconds += (performance.now() - t0) / 1000;
    return x;
  }

  // The sampled id if the last mask allows it, else the allowed token of highest logit (a
  // sampler handed only -Infinity or NaN falls back to id 0).
  choose(id: number, logits: Float32Array): number {
    const bits = this.mask!.bits;
    if (id >= 0 && id < this.grammar.nVocab && (bits[id >>> 5]! & (1 << (id & 31))) !== 0) return id;
    let best = -1;
    let bestV = -Infinity;
    for (let i = 0; i < this.grammar.nVocab; i++) {
      if ((bits[i >>> 5]! & (1 << (i & 31))) === 0) continue;
      const v = logits[i]!;
      if (best < 0 || v > bestV) {
        best = i;
        bestV = v;
      }
    }
    return best;
  }

  // Follows a token other than an end-of-generation one.
  accept(id: number): void {
    const t0 = performance.now();
    let states: Frame[] | undefined = this.states;
    for (const b of this.grammar.trie.bytes[id] ?? []) {
      states = this.grammar.stepAll(states, b);
      if (states === undefined) break;
    }
    if (states === undefined || (this.grammar.trie.bytes[id]?.length ?? 0) === 0) {
      throw new ActiveflowError("BAD_ARGUMENT", `token ${id} does not continue the JSON value here`);
    }
    this.states = states;
    this.seconds += (performance.now() - t0) / 1000;
  }
}
