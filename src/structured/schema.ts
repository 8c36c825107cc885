// JSON Schema -> a graph of value nodes the JSON automaton (automaton.ts) walks. A subset of
// draft 2020-12 is supported; every other keyword that constrains a value is refused with its
// JSON pointer, never ignored (docs/STRUCTURED_OUTPUT.md lists both).
import { ActiveflowError } from "../errors.js";

// A JSON Schema document (an object, or true / false).
export type JsonSchema = boolean | { readonly [keyword: string]: unknown };

// The JSON types a node may start, as bits.
export const T_STRING = 1;
export const T_INTEGER = 2;
export const T_NUMBER = 4;
export const T_BOOLEAN = 8;
export const T_NULL = 16;
export const T_OBJECT = 32;
export const T_ARRAY = 64;
const T_ALL = 127;
const TYPE_BITS: Readonly<Record<string, number>> = {
  string: T_STRING, integer: T_INTEGER, number: T_NUMBER | T_INTEGER, boolean: T_BOOLEAN, null: T_NULL, object: T_OBJECT, array: T_ARRAY,
};

// Keywords that only describe (never constrain) a value, and containers of subschemas that
// count only where a $ref reaches them.
const ANNOTATIONS = new Set([
  "title", "description", "$schema", "$id", "$comment", "$anchor", "default", "examples", "deprecated", "readOnly", "writeOnly",
  "$defs", "definitions",
]);
const SUPPORTED = [
  "type", "enum", "const", "properties", "required", "additionalProperties", "items", "prefixItems", "minItems", "maxItems",
  "anyOf", "oneOf", "allOf", "$ref",
] as const;
const SUPPORTED_SET = new Set<string>(SUPPORTED);
const OBJECT_KEYWORDS = ["properties", "required", "additionalProperties"];
const ARRAY_KEYWORDS = ["items", "prefixItems", "minItems", "maxItems"];

// A trie over the UTF-8 bytes of fixed texts: enum / const values, true, false, null, and an
// object's next possible keys (with their quotes; `leaf` is then the property's index).
export class LitNode {
  end = false;
  leaf = -1;
  readonly next = new Map<number, LitNode>();
  // Fewest bytes from here to the end of the value (key tries: to the end of the object).
  rest = Infinity;
  constructor(readonly id: number) {}
}

export interface PropSpec {
  name: string;
  key: Uint8Array; // the key as JSON text, quotes included
  node: SchemaNode;
  required: boolean;
}

// Properties are written in schema order; an optional one may be left out. Costs are the
// fewest bytes to close the object from each phase (for finishing within a token budget).
export interface ObjectSpec {
  props: PropSpec[];
  // [props + 1] the keys that may come at index i: props i.. up to the first required one.
  keys: (LitNode | undefined)[];
  // [props + 1] whether a required property remains from index i (then `}` must wait).
  requiredFrom: boolean[];
  // Free-form objects (no `properties`): any key, values of this node; undefined: none.
  additional: SchemaNode | undefined;
  openCost: number; // after `{`
  keyStartCost: number[]; // [props + 1] after a comma, before the key at index i
  nextCost: number[]; // [props + 1] after the value of property i - 1
  colonCost: number[]; // [props] after the key of property i
}

export interface ArraySpec {
  prefix: SchemaNode[];
  items: SchemaNode | undefined; // after the prefix; undefined: no more items
  minItems: number;
  maxItems: number; // Infinity when unbounded
  // Counts at or above cap behave alike, so the automaton saturates its count there.
  cap: number;
  // [cap + 1] fewest bytes to close the array after the `,` or `[` before item n, and after item n - 1.
  itemCost: number[];
  nextCost: number[];
}

export class SchemaNode {
  types = 0;
  object: ObjectSpec | undefined;
  array: ArraySpec | undefined;
  literals: LitNode | undefined; // enum / const: only these texts
  anyOf: SchemaNode[] | undefined; // a value of any one option
  minLen = Infinity; // bytes of the shortest value
  constructor(readonly id: number, readonly path: string) {}
}

export interface CompiledSchema {
  root: SchemaNode;
  // The literal tries of true, false and null.
  trueLit: LitNode;
  falseLit: LitNode;
  nullLit: LitNode;
}

const utf8 = new TextEncoder();

function pointer(path: string, key: string | number): string {
  return `${path}/${String(key).replace(/~/g, "~0").replace(/\//g, "~1")}`;
}

function describe(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 60)}...` : s;
}

class Compiler {
  private nextNode = 0;
  private nextLit = 0;
  private readonly nodes: SchemaNode[] = [];
  private readonly memo = new Map<object, SchemaNode>();
  private readonly refsInProgress = new Set<string>();
  private readonly oneOfs: SchemaNode[] = [];
  private any: SchemaNode | undefined;

  constructor(private readonly doc: JsonSchema, private readonly source: string) {}

  fail(path: string, message: string): never {
    throw new ActiveflowError("BAD_SCHEMA", `${this.source} at ${path === "" ? "/" : path}: ${message}`);
  }

  lit(): LitNode {
    return new LitNode(this.nextLit++);
  }

  node(path: string): SchemaNode {
    const n = new SchemaNode(this.nextNode++, path);
    this.nodes.push(n);
    return n;
  }

  run(): CompiledSchema {
    const root = this.compile(this.doc, "");
    this.minLengths();
    for (const n of this.oneOfs) this.checkOneOf(n);
    for (const n of this.nodes) {
      if (n.object) this.objectCosts(n.object);
      if (n.array) this.arrayCosts(n.array);
      if (n.literals) litRest(n.literals);
    }
    return { root, trueLit: this.words("true"), falseLit: this.words("false"), nullLit: this.words("null") };
  }

  words(text: string): LitNode {
    const t = this.lit();
    addText(t, utf8.encode(text), -1, () => this.lit());
    litRest(t);
    return t;
  }

  // Any JSON value: free-form objects and arrays of any values.
  anyNode(): SchemaNode {
    if (!this.any) {
      const n = this.node("");
      this.any = n;
      n.types = T_ALL;
      n.object = this.objectSpec([], n);
      n.array = this.arraySpec([], n, 0, Infinity);
    }
    return this.any;
  }

  compile(s: unknown, path: string): SchemaNode {
    if (s === true) return this.anyNode();
    if (s === false) this.fail(path, "the schema false allows no value");
    if (typeof s !== "object" || s === null || Array.isArray(s)) this.fail(path, `a schema must be an object or a boolean, got ${describe(s)}`);
    const memo = this.memo.get(s);
    if (memo) return memo;
    const o = s as Record<string, unknown>;
    const keys = Object.keys(o);
    for (const k of keys) {
      if (ANNOTATIONS.has(k) || SUPPORTED_SET.has(k) || k.startsWith("x-")) continue;
      this.fail(pointer(path, k), `keyword "${k}" is not supported (supported: ${SUPPORTED.join(", ")}; annotations such as title and description are ignored)`);
    }
    const constraints = keys.filter((k) => SUPPORTED_SET.has(k));
    const alone = (k: string, allowed: readonly string[] = []) => {
      const other = constraints.find((c) => c !== k && !allowed.includes(c));
      if (other !== undefined) this.fail(pointer(path, other), `"${other}" beside "${k}" is not supported (their intersection is not computed); move it into the ${k} schema`);
    };
    if (o.$ref !== undefined) {
      alone("$ref");
      const node = this.ref(o.$ref, pointer(path, "$ref"));
      this.memo.set(s, node);
      return node;
    }
    if (o.allOf !== undefined) {
      alone("allOf");
      if (!Array.isArray(o.allOf) || o.allOf.length !== 1) this.fail(pointer(path, "allOf"), "allOf is supported with exactly one schema (intersections are not computed)");
      const node = this.compile(o.allOf[0], pointer(pointer(path, "allOf"), 0));
      this.memo.set(s, node);
      return node;
    }
    const node = this.node(path);
    this.memo.set(s, node);
    for (const k of ["anyOf", "oneOf"] as const) {
      if (o[k] === undefined) continue;
      alone(k);
      const list = o[k];
      if (!Array.isArray(list) || list.length === 0) this.fail(pointer(path, k), `${k} must be a non-empty array of schemas`);
      node.anyOf = list.map((sub, i) => this.compile(sub, pointer(pointer(path, k), i)));
      if (k === "oneOf") this.oneOfs.push(node);
      return node;
    }
    let types = T_ALL;
    if (o.type !== undefined) {
      const list = Array.isArray(o.type) ? o.type : [o.type];
      types = 0;
      list.forEach((t, i) => {
        const bits = typeof t === "string" ? TYPE_BITS[t] : undefined;
        if (bits === undefined) this.fail(Array.isArray(o.type) ? pointer(pointer(path, "type"), i) : pointer(path, "type"), `unknown type ${describe(t)} (expected string, number, integer, boolean, null, object or array)`);
        types |= bits;
      });
      if (types === 0) this.fail(pointer(path, "type"), "an empty type list allows no value");
    } else if (o.enum === undefined && o.const === undefined) {
      // Without `type`, object or array keywords say which one is meant (llama.cpp reads them so too).
      const inferred = (keys.some((k) => OBJECT_KEYWORDS.includes(k)) ? T_OBJECT : 0) | (keys.some((k) => ARRAY_KEYWORDS.includes(k)) ? T_ARRAY : 0);
      if (inferred !== 0) types = inferred;
    }
    if (o.enum !== undefined || o.const !== undefined) {
      if (o.enum !== undefined && o.const !== undefined) this.fail(pointer(path, "const"), "give either enum or const, not both");
      const k = o.enum !== undefined ? "enum" : "const";
      alone(k, ["type"]);
      const values = k === "enum" ? o.enum : [o.const];
      if (!Array.isArray(values) || values.length === 0) this.fail(pointer(path, "enum"), "enum must be a non-empty array");
      const root = this.lit();
      let kept = 0;
      for (const v of values) {
        if ((typeBitsOf(v) & types) === 0) continue; // outside `type`: never valid
        addText(root, utf8.encode(JSON.stringify(v)), -1, () => this.lit());
        kept++;
      }
      if (kept === 0) this.fail(pointer(path, k), `no ${k} value has an allowed type`);
      node.literals = root;
      return node;
    }
    node.types = types;
    if (types & T_OBJECT) node.object = this.object(o, path);
    if (types & T_ARRAY) node.array = this.array(o, path);
    return node;
  }

  ref(ref: unknown, path: string): SchemaNode {
    if (typeof ref !== "string" || !(ref === "#" || ref.startsWith("#/"))) {
      this.fail(path, `only local references (#, #/$defs/..., #/definitions/...) are supported, got ${describe(ref)}`);
    }
    let target: unknown = this.doc;
    for (const raw of ref === "#" ? [] : ref.slice(2).split("/")) {
      const part = decodeURIComponent(raw).replace(/~1/g, "/").replace(/~0/g, "~");
      target = typeof target === "object" && target !== null ? (target as Record<string, unknown>)[part] : undefined;
      if (target === undefined) this.fail(path, `reference ${ref} points to nothing`);
    }
    const known = typeof target === "object" && target !== null ? this.memo.get(target) : undefined;
    if (known) return known;
    // A target not compiled yet while its own $ref chain is being followed: $refs in a circle.
    if (this.refsInProgress.has(ref)) this.fail(path, `reference ${ref} leads back to itself without a schema in between`);
    this.refsInProgress.add(ref);
    try {
      return this.compile(target, ref.slice(1));
    } finally {
      this.refsInProgress.delete(ref);
    }
  }

  object(o: Record<string, unknown>, path: string): ObjectSpec {
    const propsRaw = o.properties ?? {};
    if (typeof propsRaw !== "object" || propsRaw === null || Array.isArray(propsRaw)) this.fail(pointer(path, "properties"), "properties must be an object");
    const required = o.required ?? [];
    if (!Array.isArray(required) || required.some((r) => typeof r !== "string") || new Set(required).size !== required.length) {
      this.fail(pointer(path, "required"), "required must be an array of distinct strings");
    }
    for (const r of required as string[]) {
      if (!Object.hasOwn(propsRaw, r)) this.fail(pointer(path, "required"), `required property ${describe(r)} has no schema in properties`);
    }
    const props: PropSpec[] = Object.entries(propsRaw).map(([name, sub]) => ({
      name,
      key: utf8.encode(JSON.stringify(name)),
      node: this.compile(sub, pointer(pointer(path, "properties"), name)),
      required: (required as string[]).includes(name),
    }));
    const add = o.additionalProperties;
    if (add !== undefined && typeof add !== "boolean" && (typeof add !== "object" || add === null || Array.isArray(add))) {
      this.fail(pointer(path, "additionalProperties"), "additionalProperties must be a boolean or a schema");
    }
    // With `properties`, only they are written (extra keys are allowed by the schema but never
    // generated); without, any key may come, its value of additionalProperties (absent: any value).
    let additional: SchemaNode | undefined;
    if (props.length === 0 && add !== false) additional = add === undefined || add === true ? this.anyNode() : this.compile(add, pointer(path, "additionalProperties"));
    return this.objectSpec(props, additional);
  }

  objectSpec(props: PropSpec[], additional: SchemaNode | undefined): ObjectSpec {
    const n = props.length;
    const keys: (LitNode | undefined)[] = [];
    const requiredFrom: boolean[] = new Array(n + 1).fill(false);
    for (let i = n - 1; i >= 0; i--) requiredFrom[i] = requiredFrom[i + 1]! || props[i]!.required;
    for (let i = 0; i <= n; i++) {
      if (i === n) {
        keys.push(undefined);
        break;
      }
      const t = this.lit();
      for (let j = i; j < n; j++) {
        addText(t, props[j]!.key, j, () => this.lit());
        if (props[j]!.required) break;
      }
      keys.push(t);
    }
    return { props, keys, requiredFrom, additional, openCost: Infinity, keyStartCost: [], nextCost: [], colonCost: [] };
  }

  array(o: Record<string, unknown>, path: string): ArraySpec {
    const count = (k: "minItems" | "maxItems", fallback: number) => {
      const v = o[k];
      if (v === undefined) return fallback;
      if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) this.fail(pointer(path, k), `${k} must be a non-negative integer, got ${describe(v)}`);
      return v;
    };
    const min = count("minItems", 0);
    const max = count("maxItems", Infinity);
    if (max < min) this.fail(pointer(path, "maxItems"), `maxItems ${max} is below minItems ${min}`);
    const prefixRaw = o.prefixItems ?? [];
    if (!Array.isArray(prefixRaw)) this.fail(pointer(path, "prefixItems"), "prefixItems must be an array of schemas");
    if (Array.isArray(o.items)) this.fail(pointer(path, "items"), "items as an array (draft 4-7 tuples) is not supported; use prefixItems");
    const prefix = prefixRaw.map((sub, i) => this.compile(sub, pointer(pointer(path, "prefixItems"), i)));
    const items = o.items === false ? undefined : o.items === undefined || o.items === true ? this.anyNode() : this.compile(o.items, pointer(path, "items"));
    if (items === undefined && min > prefix.length) this.fail(pointer(path, "minItems"), `minItems ${min} needs more items than prefixItems holds, and items is false`);
    return this.arraySpec(prefix, items, min, max);
  }

  arraySpec(prefix: SchemaNode[], items: SchemaNode | undefined, minItems: number, maxItems: number): ArraySpec {
    const cap = Math.max(minItems, prefix.length, Number.isFinite(maxItems) ? maxItems : 0);
    return { prefix, items, minItems, maxItems, cap, itemCost: [], nextCost: [] };
  }

  // Shortest value of every node, to a fixed point (schemas may recurse through $ref). A node
  // left at Infinity has no finite value: refused, as the automaton could enter it and never close.
  minLengths(): void {
    for (let changed = true; changed;) {
      changed = false;
      for (const n of this.nodes) {
        const m = this.minLen(n);
        if (m < n.minLen) {
          n.minLen = m;
          changed = true;
        }
      }
    }
    for (const n of this.nodes) if (!Number.isFinite(n.minLen)) this.fail(n.path, "the schema has no finite value (a required property or minItems recurses into itself)");
  }

  minLen(n: SchemaNode): number {
    if (n.anyOf) return Math.min(...n.anyOf.map((o) => o.minLen));
    if (n.literals) return litMin(n.literals);
    let m = Infinity;
    if (n.types & (T_INTEGER | T_NUMBER)) m = 1;
    else if (n.types & T_STRING) m = 2;
    else if (n.types & (T_BOOLEAN | T_NULL)) m = 4;
    if (n.object) {
      const req = n.object.props.filter((p) => p.required);
      m = Math.min(m, 2 + req.reduce((s, p) => s + p.key.length + 1 + p.node.minLen, 0) + Math.max(0, req.length - 1));
    }
    if (n.array) {
      let s = 2 + Math.max(0, n.array.minItems - 1);
      for (let k = 0; k < n.array.minItems; k++) s += itemAt(n.array, k)!.minLen;
      m = Math.min(m, s);
    }
    return m;
  }

  objectCosts(o: ObjectSpec): void {
    const n = o.props.length;
    if (o.additional) {
      // Free-form: `"":` plus the shortest value, then `}`.
      const pair = 2 + 1 + o.additional.minLen;
      o.openCost = 1;
      o.keyStartCost = [pair + 1];
      o.nextCost = [1];
      o.colonCost = [];
      return;
    }
    // After property i - 1's value: a comma, key, colon and value for each required one left, then `}`.
    const next = new Array<number>(n + 1).fill(1);
    for (let i = n - 1; i >= 0; i--) {
      const p = o.props[i]!;
      next[i] = next[i + 1]! + (p.required ? 1 + p.key.length + 1 + p.node.minLen : 0);
    }
    const colon = o.props.map((p, j) => 1 + p.node.minLen + next[j + 1]!);
    for (let i = 0; i < n; i++) keyRest(o.keys[i]!, colon);
    o.nextCost = next;
    o.colonCost = colon;
    o.keyStartCost = o.keys.map((t) => t?.rest ?? Infinity);
    o.openCost = o.requiredFrom[0] ? o.keyStartCost[0]! : 1;
  }

  arrayCosts(a: ArraySpec): void {
    // item[n]: from the start of item n to `]`; next[n]: from after item n - 1 (n items written).
    const next = new Array<number>(a.cap + 1);
    const item = new Array<number>(a.cap + 1);
    for (let n = a.cap; n >= 0; n--) {
      const node = itemAt(a, n);
      // Beyond cap (>= minItems) a `]` may follow at once.
      item[n] = node ? node.minLen + (n + 1 > a.cap ? 1 : next[n + 1]!) : Infinity;
      next[n] = n >= a.minItems ? 1 : 1 + item[n]!;
    }
    a.itemCost = item;
    a.nextCost = next;
  }

  // oneOf is kept only where at most one option can match any value: options whose values
  // start with different bytes (a string and a number; enums of different first letters).
  checkOneOf(n: SchemaNode): void {
    const seen = new Map<number, number>();
    n.anyOf!.forEach((opt, i) => {
      for (const b of firstBytes(opt, new Set())) {
        const j = seen.get(b);
        if (j !== undefined && j !== i) {
          this.fail(pointer(n.path, "oneOf"), `options ${j} and ${i} may both match a value starting with ${describe(String.fromCharCode(b))}, so a value could match both; use anyOf if either will do`);
        }
        seen.set(b, i);
      }
    });
  }
}

// Array item n's schema (undefined: no item may come there).
export function itemAt(a: ArraySpec, n: number): SchemaNode | undefined {
  return n < a.prefix.length ? a.prefix[n] : a.items;
}

function typeBitsOf(v: unknown): number {
  if (v === null) return T_NULL;
  if (typeof v === "boolean") return T_BOOLEAN;
  if (typeof v === "number") return Number.isInteger(v) ? T_INTEGER | T_NUMBER : T_NUMBER;
  if (typeof v === "string") return T_STRING;
  if (Array.isArray(v)) return T_ARRAY;
  return T_OBJECT;
}

function addText(root: LitNode, bytes: Uint8Array, leaf: number, make: () => LitNode): void {
  let at = root;
  for (const b of bytes) {
    let next = at.next.get(b);
    if (!next) {
      next = make();
      at.next.set(b, next);
    }
    at = next;
  }
  at.end = true;
  at.leaf = leaf;
}

function litMin(t: LitNode): number {
  if (t.end) return 0;
  let m = Infinity;
  for (const c of t.next.values()) m = Math.min(m, 1 + litMin(c));
  return m;
}

function litRest(t: LitNode): number {
  let m = t.end ? 0 : Infinity;
  for (const c of t.next.values()) m = Math.min(m, 1 + litRest(c));
  t.rest = m;
  return m;
}

// Key tries: bytes to the end of the key, then what closing the object costs after it.
function keyRest(t: LitNode, colon: readonly number[]): number {
  let m = t.end ? colon[t.leaf]! : Infinity;
  for (const c of t.next.values()) m = Math.min(m, 1 + keyRest(c, colon));
  t.rest = m;
  return m;
}

const DIGITS_AND_MINUS = [0x2d, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39];

function firstBytes(n: SchemaNode, visiting: Set<SchemaNode>): number[] {
  if (visiting.has(n)) return [];
  visiting.add(n);
  if (n.anyOf) return n.anyOf.flatMap((o) => firstBytes(o, visiting));
  if (n.literals) return [...n.literals.next.keys()];
  const out: number[] = [];
  if (n.types & T_STRING) out.push(0x22);
  if (n.types & (T_NUMBER | T_INTEGER)) out.push(...DIGITS_AND_MINUS);
  if (n.types & T_BOOLEAN) out.push(0x74, 0x66);
  if (n.types & T_NULL) out.push(0x6e);
  if (n.types & T_OBJECT) out.push(0x7b);
  if (n.types & T_ARRAY) out.push(0x5b);
  return out;
}

// The schema "json": any JSON object (OpenAI's response_format json_object).
export const JSON_OBJECT_SCHEMA: JsonSchema = { type: "object" };

// Compiles a schema; throws BAD_SCHEMA naming `source` and the JSON pointer of the bad keyword.
export function compileJsonSchema(schema: JsonSchema | "json", source = "schema"): CompiledSchema {
  return new Compiler(schema === "json" ? JSON_OBJECT_SCHEMA : schema, source).run();
}
