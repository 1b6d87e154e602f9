// A metrics.jsonl file (one dashboard update per line) parses back into the updates written,
// and a bad line is one clear error naming the file and line.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { UserError } from "../../runtime/errors.js";
import { initialState, reduce } from "../../tui/state.js";
import { parseUpdates } from "../../tui/memory-source.js";
import { sampleRun } from "../../tui/sample-run.js";

const dir = mkdtempSync(join(tmpdir(), "aze-tui-replay-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("metrics.jsonl replay", () => {
  it("reads back the updates written, to the same dashboard state", () => {
    const updates = sampleRun(300);
    const file = join(dir, "metrics.jsonl");
    writeFileSync(file, updates.map((u) => JSON.stringify(u)).join("\n") + "\n\n");
    const parsed = parseUpdates(readFileSync(file, "utf8"), file);
    expect(parsed).toEqual(updates);
    expect(JSON.stringify(parsed.reduce(reduce, initialState))).toBe(JSON.stringify(updates.reduce(reduce, initialState)));
  });

  it("names the file and line of a line that is not JSON", () => {
    const text = `${JSON.stringify(sampleRun(0)[0])}\n{"kind": "step", "metrics": \n`;
    expect(() => parseUpdates(text, "runs/demo/metrics.jsonl")).toThrow(UserError);
    expect(() => parseUpdates(text, "runs/demo/metrics.jsonl")).toThrow(/^runs\/demo\/metrics\.jsonl:2: not JSON/);
  });

  it("names the file and line of an update of unknown kind", () => {
    expect(() => parseUpdates(`\n{"kind":"weather"}`, "m.jsonl")).toThrow(
      'm.jsonl:2: "kind" must be one of run, step, actors, event, end, got "weather"',
    );
  });
});
