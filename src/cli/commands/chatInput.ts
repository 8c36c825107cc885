// Turning typed and pasted lines into chat messages. A terminal delivers a pasted block as
// lines a few milliseconds apart (or in the same tick), while a person pressing Enter is far
// slower: lines that follow each other within PASTE_JOIN_MS are one message. A line ending
// in a backslash continues on the next line whatever the timing (and without a terminal).

// Longer than a terminal's gap between the lines of one paste, shorter than any typing.
export const PASTE_JOIN_MS = 30;

export interface Timers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

const realTimers: Timers = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

export class LineJoiner {
  private pending: string[] = [];
  private continuing = false;
  private timer: unknown;

  // joinMs 0: every line is a message unless it ends in a backslash (pipes, scripts).
  constructor(
    private readonly joinMs: number,
    private readonly emit: (message: string) => void,
    private readonly timers: Timers = realTimers,
  ) {}

  // True while a backslash asks for more lines (the caller may show a continuation prompt).
  get waitingForMore(): boolean {
    return this.continuing;
  }

  line(raw: string): void {
    if (this.timer !== undefined) {
      this.timers.clear(this.timer);
      this.timer = undefined;
    }
    const cont = raw.endsWith("\\");
    this.pending.push(cont ? raw.slice(0, -1) : raw);
    this.continuing = cont;
    if (cont) return;
    if (this.joinMs <= 0) this.flush();
    else this.timer = this.timers.set(() => this.flush(), this.joinMs);
  }

  // End of input: whatever is pending is the last message.
  end(): void {
    if (this.timer !== undefined) this.timers.clear(this.timer);
    this.timer = undefined;
    this.flush();
  }

  private flush(): void {
    this.timer = undefined;
    this.continuing = false;
    if (this.pending.length === 0) return;
    const message = this.pending.join("\n");
    this.pending = [];
    this.emit(message);
  }
}

// Messages waiting for the chat loop, which takes them one at a time.
export class MessageQueue {
  private items: string[] = [];
  private closed = false;
  private wake: (() => void) | undefined;

  push(message: string): void {
    this.items.push(message);
    this.wake?.();
  }

  close(): void {
    this.closed = true;
    this.wake?.();
  }

  // The next message, or undefined once the input has ended and the queue is empty.
  async next(): Promise<string | undefined> {
    while (this.items.length === 0 && !this.closed) {
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
    return this.items.shift();
  }
}
