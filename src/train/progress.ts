// A one-line progress bar on stderr. On a terminal it redraws in place (at most 10 times a second);
// elsewhere (CI logs, pipes) it prints a line at every quarter so logs stay short.

export class ProgressBar {
  readonly #total: number;
  readonly #label: string;
  readonly #tty: boolean;
  readonly #t0 = performance.now();
  #lastDraw = 0;
  #lastQuarter = 0;
  #enabled: boolean;

  constructor(label: string, total: number, o: { enabled?: boolean } = {}) {
    this.#label = label;
    this.#total = total;
    this.#tty = Boolean(process.stderr.isTTY);
    this.#enabled = o.enabled ?? true;
  }

  /** `done` items finished; `info` is shown after the bar (e.g. loss=0.31 1200 samples/s). */
  update(done: number, info = ''): void {
    if (!this.#enabled || this.#total <= 0) return;
    const now = performance.now();
    const frac = Math.min(1, done / this.#total);
    if (this.#tty) {
      if (now - this.#lastDraw < 100 && done < this.#total) return;
      this.#lastDraw = now;
      const width = 24;
      const filled = Math.round(frac * width);
      const eta = done > 0 ? ((now - this.#t0) / done) * (this.#total - done) / 1000 : 0;
      process.stderr.write(`\r${this.#label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${this.#total} ${info} eta ${eta.toFixed(0)}s\x1b[K`);
    } else {
      const quarter = Math.floor(frac * 4);
      if (quarter > this.#lastQuarter) {
        this.#lastQuarter = quarter;
        process.stderr.write(`${[this.#label, `${done}/${this.#total}`, info].filter((s) => s !== '').join(' ')}\n`);
      }
    }
  }

  done(): void {
    if (this.#enabled && this.#tty) process.stderr.write('\r\x1b[K');
    this.#enabled = false;
  }
}

/**
 * `fn` with a bar over `total` items, given the update to call with the count done (an evaluation's
 * `onBatch`); the bar is cleared when `fn` returns or throws.
 */
export function withProgressBar<T>(label: string, total: number, enabled: boolean, fn: (update: (done: number) => void) => T): T {
  const bar = new ProgressBar(label, total, { enabled });
  try {
    return fn((done) => bar.update(done));
  } finally {
    bar.done();
  }
}
