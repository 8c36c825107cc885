// Turns a stream of token ids into text pieces, holding back bytes of a UTF-8 sequence that
// a later token completes (byte-level BPE splits emoji and CJK across tokens).
import type { Tokenizer } from "../tokenizer/types.js";

export class TokenTextStream {
  private readonly decoder = new TextDecoder("utf-8");
  constructor(private readonly tokenizer: Tokenizer) {}

  push(id: number): string {
    if (this.tokenizer.isControl(id)) return "";
    return this.decoder.decode(this.tokenizer.tokenBytes(id), { stream: true });
  }

  flush(): string {
    return this.decoder.decode();
  }
}
