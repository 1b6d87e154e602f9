// A metrics.jsonl file (one dashboard update per line) parses back into the updates written,
// and a bad line is one clear error naming the file and line.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { Command } from "commander";
import { afterAll, describe, expect, it } from "vitest";
import { UserError } from "../../runtime/errors.js";
import { registerDashboardCommands, replayFile } from "../../tui/commands.js";
import { initialState, reduce } from "../../tui/state.js";
import { parseUpdates } from "../../tui/memory-source.js";
import { sampleRun } from "../../tui/sample-run.js";

const dir = mkdtempSync(join(tmpdir(), "aze-tui-replay-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("metrics.jsonl replay", () => {
  it("reads back the updates written, to the same dashboard state", () => {
    const updates = sampleRun(300);
    const file = join(dir, "metrics.jsonl");
    writeFileSync(file, `${updates.map((u) => JSON.stringify(u)).join("\n")}\n\n`);
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
    expect(() => parseUpdates(`\n{"kind":"weather"}`, "m.jsonl")).toThrow('m.jsonl:2: "kind" must be one of run, step, actors, event, end, got "weather"');
  });

  it("replays a file to its end through the plain output", async () => {
    const file = join(dir, "short.jsonl");
    writeFileSync(
      file,
      sampleRun(40)
        .map((u) => JSON.stringify(u))
        .join("\n"),
    );
    const out = new PassThrough();
    let text = "";
    out.on("data", (c: Buffer) => (text += c.toString()));
    const how = await replayFile(file, { rate: 2000, stdout: out as unknown as NodeJS.WriteStream });
    expect(how).toBe("end");
    const lines = text.trimEnd().split("\n");
    expect(lines.filter((l) => l.startsWith("step ")).length).toBe(40);
    // The recording has no end; the replay says so in its last line.
    expect(lines.at(-1)).toBe("run over: replay over");
  });

  it("says which file it cannot read", async () => {
    await expect(replayFile(join(dir, "missing.jsonl"), { rate: 1 })).rejects.toThrow(/cannot read .*missing\.jsonl: ENOENT/);
  });

  it("refuses a rate that is not a positive number", async () => {
    const program = new Command().exitOverride().configureOutput({ writeErr: () => {} });
    registerDashboardCommands(program);
    await expect(program.parseAsync(["dashboard", "--replay", "x.jsonl", "--rate", "0"], { from: "user" })).rejects.toThrow(
      /--rate must be a positive number, got "0"/,
    );
  });

  it("without a replay, attaches to the one run that is up, and says when there is none", async () => {
    const program = new Command().exitOverride();
    registerDashboardCommands(program);
    const saved = process.env.AZE_RUNS;
    process.env.AZE_RUNS = join(dir, "runs");
    try {
      await expect(program.parseAsync(["dashboard"], { from: "user" })).rejects.toThrow(/^no run is up in .*runs: start one/);
      await expect(program.parseAsync(["dashboard", "--nats", "nats://127.0.0.1:1"], { from: "user" })).rejects.toThrow(
        new UserError("dashboard --nats needs --creds: the run's creds/client.json, copied from the host that ran `cluster up`"),
      );
    } finally {
      if (saved === undefined) delete process.env.AZE_RUNS;
      else process.env.AZE_RUNS = saved;
    }
  });
});
