// The grammars an engine has compiled, by schema text, so generations with the same schema
// (a server's requests) share their cached masks.
import { ActiveflowError } from "../errors.js";
import { tokenTrie } from "../tokenizer/tokenTrie.js";
import type { Tokenizer } from "../tokenizer/types.js";
import { JsonGrammar } from "./constraint.js";
import { compileJsonSchema, type JsonSchema } from "./schema.js";

// Schemas kept compiled; the least recently used goes first.
const MAX_GRAMMARS = 8;

export class GrammarCache {
  private readonly grammars = new Map<string, JsonGrammar>();

  constructor(private readonly tokenizer: Tokenizer, private readonly nVocab: number) {}

  get(schema: JsonSchema | "json"): JsonGrammar {
    let key: string;
    try {
      key = JSON.stringify(schema);
    } catch (e) {
      throw new ActiveflowError("BAD_SCHEMA", `schema: not serialisable as JSON (${(e as Error).message})`);
    }
    let g = this.grammars.get(key);
    if (g) {
      this.grammars.delete(key);
    } else {
      g = new JsonGrammar(compileJsonSchema(schema), tokenTrie(this.tokenizer), [...this.tokenizer.stopIds], this.nVocab);
      if (this.grammars.size >= MAX_GRAMMARS) this.grammars.delete(this.grammars.keys().next().value!);
    }
    this.grammars.set(key, g);
    return g;
  }
}
