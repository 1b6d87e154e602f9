// The CLI progress bar: one line redrawn in place on a terminal (throttled to 100 ms), a
// plain line per tenth elsewhere, and a final line with the rate.
import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { createProgress } from "../../runtime/progress.js";

function capture() {
  const stream = new PassThrough();
  let text = "";
  stream.on("data", (d) => (text += d));
  return { stream, text: () => text };
}

describe("progress bar", () => {
  it("writes a plain line per tenth when the stream is not a terminal", () => {
    const out = capture();
    let t = 0;
    const p = createProgress("counting words", 1000, { stream: out.stream, tty: false, kind: "items", unit: "lines", now: () => t });
    for (let i = 1; i <= 1000; i++) {
      t = i; // 1 ms per line: 1000 lines/s
      p.update(i);
    }
    p.finish("(done)");
    const lines = out.text().trim().split("\n");
    expect(lines).toHaveLength(10); // tenths 1..9, then the final line
    expect(lines[0]).toBe("counting words  10% 100 lines of 1,000 lines, 1,000 lines/s 1 s left");
    expect(lines.at(-1)).toBe("counting words 100% 1,000 lines of 1,000 lines, 1,000 lines/s (done)");
  });

  it("redraws one line on a terminal, at most every 100 ms", () => {
    const out = capture();
    let t = 0;
    const p = createProgress("tokenizing", 4e6, { stream: out.stream, tty: true, kind: "bytes", now: () => t });
    for (let i = 1; i <= 40; i++) {
      t = i * 50;
      p.update(i * 1e5);
    }
    p.finish();
    const text = out.text();
    expect(text.split("\r").length - 1).toBe(21); // 20 redraws (every other update) and the final one
    expect(text.endsWith("\n")).toBe(true);
    expect(text).toContain("tokenizing [#############-----------]  53% 2.1 MB of 4 MB, 2 MB/s 1 s left");
    expect(text.split("\n")).toHaveLength(2); // a single line, ended once
  });
});
