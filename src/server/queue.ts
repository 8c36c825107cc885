// One generation at a time (one model, one KV cache), the others waiting in arrival order in
// a queue of bounded length: a request beyond it is refused at once (429) rather than left to
// wait for minutes. A waiting request whose client goes away leaves the queue.
import { ActiveflowError } from "../errors.js";

export class QueueFullError extends Error {
  constructor(readonly limit: number) {
    super(`the server is busy: ${limit} request${limit === 1 ? " is" : "s are"} already waiting; retry later`);
    this.name = "QueueFullError";
  }
}

interface Waiter {
  grant: () => void;
  signal: AbortSignal | undefined;
  onAbort: () => void;
}

export class GenerationQueue {
  private running = false;
  private readonly waiting: Waiter[] = [];

  // maxWaiting: requests that may wait while one runs.
  constructor(readonly maxWaiting: number) {}

  get busy(): boolean {
    return this.running;
  }

  get length(): number {
    return this.waiting.length;
  }

  // Resolves with the function that gives the slot back, once it is this caller's turn.
  // Throws QueueFullError at once when the queue is full, ABORTED when `signal` aborts first.
  async acquire(signal?: AbortSignal): Promise<() => void> {
    signal?.throwIfAborted();
    if (!this.running) {
      this.running = true;
      return this.releaser();
    }
    if (this.waiting.length >= this.maxWaiting) throw new QueueFullError(this.maxWaiting);
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        signal,
        grant: () => {
          signal?.removeEventListener("abort", w.onAbort);
          resolve(this.releaser());
        },
        onAbort: () => {
          const at = this.waiting.indexOf(w);
          if (at >= 0) this.waiting.splice(at, 1);
          reject(new ActiveflowError("ABORTED", "the request was cancelled while it waited"));
        },
      };
      signal?.addEventListener("abort", w.onAbort, { once: true });
      this.waiting.push(w);
    });
  }

  private releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.waiting.shift();
      if (next) next.grant();
      else this.running = false;
    };
  }
}
