// Stop strings (GenerateOptions.stop): generation ends where the text contains one of them,
// and the stop string itself is never handed out. A stop string may span tokens, so text
// that could still grow into one is held back until the next token settles it.
import { ActiveflowError } from "../errors.js";

export class StopMatcher {
  private held = "";
  private readonly longest: number;

  constructor(private readonly stops: readonly string[]) {
    for (const s of stops) {
      if (typeof s !== "string" || s === "") throw new ActiveflowError("BAD_ARGUMENT", `stop strings must be non-empty strings, got ${JSON.stringify(s)}`);
    }
    this.longest = Math.max(0, ...stops.map((s) => s.length));
  }

  // Adds a token's text. `emit` is what can be shown now; `stopped` is true when a stop string
  // completed (emit then ends just before it and everything after it is dropped).
  push(text: string): { emit: string; stopped: boolean } {
    if (this.stops.length === 0) return { emit: text, stopped: false };
    const all = this.held + text;
    let first = -1;
    for (const s of this.stops) {
      const at = all.indexOf(s);
      if (at >= 0 && (first < 0 || at < first)) first = at;
    }
    if (first >= 0) {
      this.held = "";
      return { emit: all.slice(0, first), stopped: true };
    }
    // Hold the longest tail that is a proper prefix of some stop string.
    let keep = 0;
    for (let n = Math.min(all.length, this.longest - 1); n > 0; n--) {
      const tail = all.slice(all.length - n);
      if (this.stops.some((s) => s.startsWith(tail))) {
        keep = n;
        break;
      }
    }
    this.held = all.slice(all.length - keep);
    return { emit: all.slice(0, all.length - keep), stopped: false };
  }

  // Text held back when the generation ends for another reason.
  flush(): string {
    const h = this.held;
    this.held = "";
    return h;
  }
}
