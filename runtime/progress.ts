// A one-line progress bar for long CLI steps (counting words, learning merges, tokenizing).
//
// Owns: drawing progress to a stream: on a terminal one line redrawn in place (bar, percent,
// rate, time left) at most every 100 ms; elsewhere (pipes, CI logs) a plain line at every
// tenth of the way, so logs stay short.
// Never: writes to stdout (results go there) or draws faster than the eye reads.
//
// Written here rather than taken from a library: Ink would take over the terminal for one
// line, and the bar is the few lines below.
import { formatBytes } from "./format.js";

export interface ProgressOptions {
  /** "bytes" shows MB and MB/s; "items" plain counts, with `unit` after them. */
  kind?: "bytes" | "items";
  unit?: string;
  stream?: NodeJS.WriteStream | NodeJS.WritableStream;
  /** Overrides the terminal check (tests). */
  tty?: boolean;
  now?: () => number;
}

export function createProgress(label: string, total: number, opts: ProgressOptions = {}) {
  const stream = opts.stream ?? process.stderr;
  const tty = opts.tty ?? Boolean((stream as NodeJS.WriteStream).isTTY);
  const now = opts.now ?? (() => performance.now());
  const started = now();
  let lastDraw = -Infinity;
  let lastTenth = 0;
  let done = 0;
  const amount = (n: number) => (opts.kind === "bytes" ? formatBytes(n) : `${Math.round(n).toLocaleString("en-US")}${opts.unit ? ` ${opts.unit}` : ""}`);

  const line = () => {
    const fraction = total > 0 ? Math.min(1, done / total) : 1;
    const seconds = (now() - started) / 1000;
    const rate = seconds > 0 ? done / seconds : 0;
    const left = rate > 0 && fraction < 1 ? ` ${Math.ceil((total - done) / rate)} s left` : "";
    const width = 24;
    const filled = Math.round(fraction * width);
    const bar = tty ? `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ` : "";
    return `${label} ${bar}${(fraction * 100).toFixed(0).padStart(3)}% ${amount(done)} of ${amount(total)}, ${amount(rate)}/s${left}`;
  };

  return {
    /** `n` done out of the total, in the unit given at creation. */
    update(n: number): void {
      done = n;
      if (tty) {
        if (now() - lastDraw < 100) return;
        lastDraw = now();
        stream.write(`\r${line()}\x1b[K`);
        return;
      }
      const tenth = total > 0 ? Math.floor((10 * Math.min(done, total)) / total) : 10;
      if (tenth > lastTenth && tenth < 10) {
        lastTenth = tenth;
        stream.write(`${line()}\n`);
      }
    },
    /** Draws the final state and ends the line. */
    finish(note?: string): void {
      done = Math.max(done, total);
      stream.write(`${tty ? "\r" : ""}${line()}${note ? ` ${note}` : ""}${tty ? "\x1b[K" : ""}\n`);
    },
  };
}
