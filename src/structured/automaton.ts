// A byte-level pushdown automaton over the JSON values a compiled schema allows. A state is a
// stack of immutable frames (each links to its parent, stored already in the phase it resumes
// in when the child value ends), so stepping never copies a stack and an unchanged frame is
// returned as itself: inside a string most bytes allocate nothing.
//
// JSON is written as llama.cpp's json-schema-to-grammar and llguidance write it: properties
// in schema order, optional ones skippable; whitespace between tokens limited to nothing, one
// space, or a newline and up to MAX_INDENT spaces or tabs (free whitespace lets a model run on
// in blank lines); numbers of bounded length (MAX_*_DIGITS) so every number parses to a finite
// double and integers stay exact.
import { itemAt, type CompiledSchema, type LitNode, type SchemaNode, T_ARRAY, T_BOOLEAN, T_INTEGER, T_NULL, T_NUMBER, T_OBJECT, T_STRING } from "./schema.js";

export const MAX_INDENT = 20;
export const MAX_INT_DIGITS = 15;
export const MAX_FRAC_DIGITS = 15;
export const MAX_EXP_DIGITS = 2;

// Frame kinds.
const ROOT = 0, STR = 1, NUM = 2, LIT = 3, OBJ = 4, ARR = 5;
// ROOT phases.
const R_START = 0, R_DONE = 1;
// STR phases: `a` holds hex digits or UTF-8 continuation bytes still due; `w` (in S_U8) which
// range the next continuation byte must lie in (U8_RANGES), as UTF-8 forbids overlongs and surrogates.
const S_NORMAL = 0, S_ESC = 1, S_HEX = 2, S_U8 = 3;
const U8_RANGES: readonly (readonly [number, number])[] = [[0x80, 0xbf], [0xa0, 0xbf], [0x80, 0x9f], [0x90, 0xbf], [0x80, 0x8f]];
// NUM phases; `a` counts the digits of the current part, `w` is 1 for integers.
const N_SIGN = 0, N_ZERO = 1, N_INT = 2, N_DOT = 3, N_FRAC = 4, N_E = 5, N_ESIGN = 6, N_EXP = 7;
// OBJ phases; `a` is the property index (O_KEY: of the key trie), `w` the whitespace run.
const O_OPEN = 0, O_KEYSTART = 1, O_KEY = 2, O_COLON = 3, O_VALUE = 4, O_NEXT = 5;
// ARR phases; `a` is the item count, saturated at the spec's cap.
const A_OPEN = 0, A_ITEM = 1, A_NEXT = 2;

export class Frame {
  // Memoised: the stack's key and fewest bytes to complete the whole value from here.
  private keyMemo: string | undefined;
  private closeMemo = -1;
  constructor(
    readonly k: number,
    readonly node: SchemaNode | undefined,
    readonly ph: number,
    readonly a: number,
    readonly w: number,
    readonly t: LitNode | undefined,
    readonly up: Frame | undefined,
  ) {}

  get key(): string {
    if (this.keyMemo === undefined) {
      const own = `${this.k}.${this.node?.id ?? ""}.${this.ph}.${this.a}.${this.w}.${this.t?.id ?? ""}`;
      this.keyMemo = this.up ? `${own}/${this.up.key}` : own;
    }
    return this.keyMemo;
  }

  // Fewest bytes that complete the root value from this stack (0: complete).
  get close(): number {
    if (this.closeMemo < 0) this.closeMemo = frameCost(this) + (this.up ? this.up.close : 0);
    return this.closeMemo;
  }
}

// Stands for the parent when a frame is walked on its own: JsonGrammar walks a string frame
// once per tokenizer, as what stays inside a string does not depend on where the string is.
export const EXIT = new Frame(6, undefined, 0, 0, 0, undefined, undefined);

// The frame on its own (its parent replaced by EXIT), and whether that is worth it: only a
// string lets most of the vocabulary through.
export function detached(f: Frame): Frame {
  return new Frame(f.k, f.node, f.ph, f.a, f.w, f.t, EXIT);
}

export function isString(f: Frame): boolean {
  return f.k === STR;
}

// One step's result: no way on, one stack, or several (anyOf options, a number that may end).
export type Step = Frame | Frame[] | undefined;

export class JsonAutomaton {
  constructor(readonly schema: CompiledSchema) {}

  start(): Frame {
    return new Frame(ROOT, this.schema.root, R_START, 0, 0, undefined, undefined);
  }

  // True when the value is complete here (an end-of-generation token may come).
  canEnd(f: Frame): boolean {
    if (f.k === ROOT) return f.ph === R_DONE;
    if (f.k === NUM) return numberMayEnd(f) && this.canEnd(f.up!);
    if (f.k === LIT) return f.t!.end && this.canEnd(f.up!);
    return false;
  }

  // True when nothing but the end may come.
  mustEnd(f: Frame): boolean {
    return f.k === ROOT && f.ph === R_DONE;
  }

  step(f: Frame, b: number): Step {
    switch (f.k) {
      case ROOT: {
        if (f.ph !== R_START) return undefined;
        const w = space(f.w, b);
        if (w >= 0) return new Frame(ROOT, f.node, R_START, 0, w, undefined, undefined);
        return this.startValue(f.node!, b, new Frame(ROOT, undefined, R_DONE, 0, 0, undefined, undefined));
      }
      case STR:
        return stepString(f, b);
      case NUM:
        return this.stepNumber(f, b);
      case LIT: {
        const c = f.t!.next.get(b);
        if (c) return c.next.size === 0 ? f.up : new Frame(LIT, undefined, 0, 0, 0, c, f.up);
        return f.t!.end ? this.step(f.up!, b) : undefined;
      }
      case OBJ:
        return this.stepObject(f, b);
      case ARR:
        return this.stepArray(f, b);
    }
    return undefined;
  }

  // The first byte of a value of `node`, whose parent resumes as `up` when it ends.
  startValue(node: SchemaNode, b: number, up: Frame): Step {
    if (node.anyOf) {
      let out: Frame[] | undefined;
      for (const opt of node.anyOf) {
        const r = this.startValue(opt, b, up);
        if (r === undefined) continue;
        out ??= [];
        if (Array.isArray(r)) out.push(...r);
        else out.push(r);
      }
      return out === undefined ? undefined : out.length === 1 ? out[0] : dedupe(out);
    }
    if (node.literals) return literal(node.literals, b, up);
    const t = node.types;
    if (b === 0x22) return t & T_STRING ? new Frame(STR, undefined, S_NORMAL, 0, 0, undefined, up) : undefined;
    if (b === 0x7b) return t & T_OBJECT ? new Frame(OBJ, node, O_OPEN, 0, 0, undefined, up) : undefined;
    if (b === 0x5b) return t & T_ARRAY ? new Frame(ARR, node, A_OPEN, 0, 0, undefined, up) : undefined;
    if (b === 0x74) return t & T_BOOLEAN ? literal(this.schema.trueLit, b, up) : undefined;
    if (b === 0x66) return t & T_BOOLEAN ? literal(this.schema.falseLit, b, up) : undefined;
    if (b === 0x6e) return t & T_NULL ? literal(this.schema.nullLit, b, up) : undefined;
    if (t & (T_NUMBER | T_INTEGER) && (b === 0x2d || isDigit(b))) {
      const int = t & T_NUMBER ? 0 : 1;
      return new Frame(NUM, undefined, b === 0x2d ? N_SIGN : b === 0x30 ? N_ZERO : N_INT, b === 0x2d ? 0 : 1, int, undefined, up);
    }
    return undefined;
  }

  private stepNumber(f: Frame, b: number): Step {
    const int = f.w === 1;
    const num = (ph: number, a: number) => new Frame(NUM, undefined, ph, a, f.w, undefined, f.up);
    switch (f.ph) {
      case N_SIGN:
        if (b === 0x30) return num(N_ZERO, 1);
        if (isDigit(b)) return num(N_INT, 1);
        return undefined;
      case N_ZERO:
      case N_INT:
        if (f.ph === N_INT && isDigit(b) && f.a < MAX_INT_DIGITS) return num(N_INT, f.a + 1);
        if (!int && b === 0x2e) return num(N_DOT, 0);
        if (!int && (b === 0x65 || b === 0x45)) return num(N_E, 0);
        return this.step(f.up!, b);
      case N_DOT:
        return isDigit(b) ? num(N_FRAC, 1) : undefined;
      case N_FRAC:
        if (isDigit(b) && f.a < MAX_FRAC_DIGITS) return num(N_FRAC, f.a + 1);
        if (b === 0x65 || b === 0x45) return num(N_E, 0);
        return this.step(f.up!, b);
      case N_E:
        if (b === 0x2b || b === 0x2d) return num(N_ESIGN, 0);
        return isDigit(b) ? num(N_EXP, 1) : undefined;
      case N_ESIGN:
        return isDigit(b) ? num(N_EXP, 1) : undefined;
      case N_EXP:
        if (isDigit(b) && f.a < MAX_EXP_DIGITS) return num(N_EXP, f.a + 1);
        return this.step(f.up!, b);
    }
    return undefined;
  }

  private stepObject(f: Frame, b: number): Step {
    const o = f.node!.object!;
    const obj = (ph: number, a: number, w: number) => new Frame(OBJ, f.node, ph, a, w, undefined, f.up);
    if (f.ph !== O_KEY) {
      const w = space(f.w, b);
      if (w >= 0) return obj(f.ph, f.a, w);
    }
    switch (f.ph) {
      case O_OPEN:
      case O_KEYSTART:
        if (b === 0x7d && f.ph === O_OPEN && !o.requiredFrom[0]) return f.up;
        if (b !== 0x22) return undefined;
        if (o.additional) return new Frame(STR, undefined, S_NORMAL, 0, 0, undefined, obj(O_COLON, 0, 0));
        {
          const c = o.keys[f.a]?.next.get(b);
          return c ? new Frame(OBJ, f.node, O_KEY, f.a, 0, c, f.up) : undefined;
        }
      case O_KEY: {
        const c = f.t!.next.get(b);
        if (!c) return undefined;
        return c.end ? obj(O_COLON, c.leaf, 0) : new Frame(OBJ, f.node, O_KEY, f.a, 0, c, f.up);
      }
      case O_COLON:
        return b === 0x3a ? obj(O_VALUE, f.a, 0) : undefined;
      case O_VALUE: {
        const free = o.additional !== undefined;
        const node = free ? o.additional! : o.props[f.a]!.node;
        return this.startValue(node, b, obj(O_NEXT, free ? 0 : f.a + 1, 0));
      }
      case O_NEXT:
        if (b === 0x7d) return o.requiredFrom[f.a] ? undefined : f.up;
        if (b === 0x2c && (o.additional || f.a < o.props.length)) return obj(O_KEYSTART, f.a, 0);
        return undefined;
    }
    return undefined;
  }

  private stepArray(f: Frame, b: number): Step {
    const s = f.node!.array!;
    const w = space(f.w, b);
    if (w >= 0) return new Frame(ARR, f.node, f.ph, f.a, w, undefined, f.up);
    switch (f.ph) {
      case A_OPEN:
      case A_ITEM: {
        if (f.ph === A_OPEN && b === 0x5d) return s.minItems === 0 ? f.up : undefined;
        const item = f.a < s.maxItems ? itemAt(s, f.a) : undefined;
        if (!item) return undefined;
        return this.startValue(item, b, new Frame(ARR, f.node, A_NEXT, Math.min(f.a + 1, s.cap), 0, undefined, f.up));
      }
      case A_NEXT:
        if (b === 0x5d) return f.a >= s.minItems ? f.up : undefined;
        if (b === 0x2c && f.a < s.maxItems && itemAt(s, f.a)) return new Frame(ARR, f.node, A_ITEM, f.a, 0, undefined, f.up);
        return undefined;
    }
    return undefined;
  }
}

function isDigit(b: number): boolean {
  return b >= 0x30 && b <= 0x39;
}

// The whitespace run after byte b, or -1 when b may not extend it: 0 none, 1 one space,
// 2 + k a newline and k spaces or tabs.
function space(w: number, b: number): number {
  if (w === 0) return b === 0x20 ? 1 : b === 0x0a ? 2 : -1;
  if (w >= 2 && w < 2 + MAX_INDENT && (b === 0x20 || b === 0x09)) return w + 1;
  return -1;
}

function literal(t: LitNode, b: number, up: Frame): Step {
  const c = t.next.get(b);
  if (!c) return undefined;
  return c.end && c.next.size === 0 ? up : new Frame(LIT, undefined, 0, 0, 0, c, up);
}

function numberMayEnd(f: Frame): boolean {
  return f.ph === N_ZERO || f.ph === N_INT || f.ph === N_FRAC || f.ph === N_EXP;
}

function stepString(f: Frame, b: number): Step {
  const str = (ph: number, a: number, w: number) => new Frame(STR, undefined, ph, a, w, undefined, f.up);
  switch (f.ph) {
    case S_NORMAL:
      if (b === 0x22) return f.up;
      if (b === 0x5c) return str(S_ESC, 0, 0);
      if (b < 0x20) return undefined; // control characters must be escaped
      if (b < 0x80) return f;
      if (b >= 0xc2 && b <= 0xdf) return str(S_U8, 1, 0);
      if (b === 0xe0) return str(S_U8, 2, 1);
      if (b === 0xed) return str(S_U8, 2, 2);
      if (b >= 0xe1 && b <= 0xef) return str(S_U8, 2, 0);
      if (b === 0xf0) return str(S_U8, 3, 3);
      if (b >= 0xf1 && b <= 0xf3) return str(S_U8, 3, 0);
      if (b === 0xf4) return str(S_U8, 3, 4);
      return undefined;
    case S_U8: {
      const [lo, hi] = U8_RANGES[f.w]!;
      if (b < lo || b > hi) return undefined;
      return f.a === 1 ? str(S_NORMAL, 0, 0) : str(S_U8, f.a - 1, 0);
    }
    case S_ESC:
      if (b === 0x75) return str(S_HEX, 4, 0);
      // " \ / b f n r t
      return b === 0x22 || b === 0x5c || b === 0x2f || b === 0x62 || b === 0x66 || b === 0x6e || b === 0x72 || b === 0x74 ? str(S_NORMAL, 0, 0) : undefined;
    case S_HEX:
      if (!(isDigit(b) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66))) return undefined;
      return f.a === 1 ? str(S_NORMAL, 0, 0) : str(S_HEX, f.a - 1, 0);
  }
  return undefined;
}

// Several stacks that may hold the same state twice (anyOf options that agree so far).
export function dedupe(states: Frame[]): Frame[] {
  if (states.length < 2) return states;
  const seen = new Set<string>();
  return states.filter((s) => {
    if (seen.has(s.key)) return false;
    seen.add(s.key);
    return true;
  });
}

// Fewest bytes to finish this frame, its parent resuming afterwards (see Frame.close).
function frameCost(f: Frame): number {
  switch (f.k) {
    case ROOT:
      return f.ph === R_DONE ? 0 : f.node!.minLen;
    case STR:
      return f.ph === S_NORMAL ? 1 : f.ph === S_ESC ? 2 : f.a + 1;
    case NUM:
      return numberMayEnd(f) ? 0 : 1;
    case LIT:
      return f.t!.rest;
    case OBJ: {
      const o = f.node!.object!;
      if (o.additional) {
        if (f.ph === O_OPEN) return o.openCost;
        if (f.ph === O_KEYSTART) return o.keyStartCost[0]!;
        if (f.ph === O_COLON) return 1 + o.additional.minLen + 1;
        if (f.ph === O_VALUE) return o.additional.minLen + 1;
        return o.nextCost[0]!;
      }
      switch (f.ph) {
        case O_OPEN: return o.openCost;
        case O_KEYSTART: return o.keyStartCost[f.a]!;
        case O_KEY: return f.t!.rest;
        case O_COLON: return o.colonCost[f.a]!;
        case O_VALUE: return o.colonCost[f.a]! - 1;
        default: return o.nextCost[f.a]!;
      }
    }
    case ARR: {
      const s = f.node!.array!;
      if (f.ph === A_OPEN) return s.minItems === 0 ? 1 : s.itemCost[0]!;
      if (f.ph === A_ITEM) return s.itemCost[f.a]!;
      return s.nextCost[f.a]!;
    }
  }
  return 0;
}
