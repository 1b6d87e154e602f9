// Counts, bytes, durations, rates and groups print short and unambiguous.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fitCell, formatAge, formatBar, formatBytes, formatCount, formatDuration, formatGroups, formatLr, formatStepMs } from "../../runtime/format.js";

describe("formatting", () => {
  it("prints counts with at most three significant digits and the right unit", () => {
    expect([0, 999, 999.7, 3412, 12_345, 231_936, 1.2e6, 5.5e9].map(formatCount)).toEqual(["0", "999", "1k", "3.41k", "12.3k", "232k", "1.2M", "5.5G"]);
    fc.assert(
      fc.property(fc.double({ min: 0, max: 1e14, noNaN: true }), (n) => {
        const [, mantissa] = /^([\d.]+)[kMGT]?$/.exec(formatCount(n))!;
        expect(Number(mantissa)).toBeLessThan(1000);
      }),
    );
  });

  it("prints bytes, durations, ages, step times and learning rates", () => {
    expect([512, 1500, 28.1e6].map(formatBytes)).toEqual(["512 B", "1.5 kB", "28.1 MB"]);
    expect([999, 59_999, 83_000, 5_400_000, 90_000_000].map(formatDuration)).toEqual(["0s", "59s", "1m23s", "1h30m", "1d01h"]);
    expect([700, 12_400].map(formatAge)).toEqual(["0.7s", "12s"]);
    expect([412.3, 2300].map(formatStepMs)).toEqual(["412ms", "2.30s"]);
    expect([0.0012, 2e-5, 0].map(formatLr)).toEqual(["1.2e-3", "2.0e-5", "0"]);
  });

  it("prints gradient groups as ranges", () => {
    expect(formatGroups([5, 0, 1, 2])).toBe("0-2,5");
    expect(formatGroups([3])).toBe("3");
    expect(formatGroups([])).toBe("–");
  });

  it("cuts cells with an ellipsis and pads them to the width", () => {
    expect(fitCell("compute-0", 6)).toBe("compu…");
    expect(fitCell("ok", 4, "right")).toBe("  ok");
  });

  it("draws bars of exactly the width, full to the eighth", () => {
    expect(formatBar(0.5, 8)).toBe("████░░░░");
    expect(formatBar(1 / 16, 2)).toBe("▏░");
    fc.assert(
      fc.property(fc.double({ min: -1, max: 2, noNaN: true }), fc.integer({ min: 1, max: 80 }), (share, width) => {
        expect(formatBar(share, width)).toHaveLength(width);
      }),
    );
  });
});
