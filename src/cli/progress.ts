// A one-line progress display on stderr. On a terminal it redraws in place (\r), at most ~10
// times a second; elsewhere (logs, CI, pipes) it prints a line only when the label changes,
// so captured output stays short.

export interface ProgressSink {
  write(s: string): unknown;
  isTTY?: boolean;
}

export class ProgressLine {
  private lastLabel = "";
  private lastDraw = 0;
  private shown = false;

  constructor(private readonly out: ProgressSink) {}

  // label: what is happening; fraction in [0, 1] when known; detail (e.g. elapsed time) is
  // shown on a terminal only, so it never adds lines to a log.
  update(label: string, fraction?: number, detail?: string): void {
    if (this.out.isTTY === true) {
      const now = Date.now();
      const done = fraction !== undefined && fraction >= 1;
      if (label === this.lastLabel && now - this.lastDraw < 100 && !done) return;
      this.lastDraw = now;
      this.lastLabel = label;
      const pct = fraction === undefined ? "" : ` ${(Math.min(1, Math.max(0, fraction)) * 100).toFixed(0)}%`;
      this.out.write(`\r\x1b[K${label}${pct}${detail !== undefined ? ` ${detail}` : ""}`);
      this.shown = true;
    } else if (label !== this.lastLabel) {
      this.lastLabel = label;
      this.out.write(`${label}\n`);
    }
  }

  // Ends the line on a terminal (so later output starts on a fresh line).
  done(finalLabel?: string): void {
    if (this.out.isTTY === true) {
      if (finalLabel !== undefined) this.out.write(`\r\x1b[K${finalLabel}\n`);
      else if (this.shown) this.out.write("\n");
    } else if (finalLabel !== undefined && finalLabel !== this.lastLabel) {
      this.out.write(`${finalLabel}\n`);
    }
    this.shown = false;
    this.lastLabel = "";
  }
}
