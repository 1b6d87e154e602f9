// A path the user got wrong ends the CLI with one line that names it and says what to do,
// not a stack trace; `--out shards/` (a trailing slash) simply works; `--version` answers.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { packageRoot } from "../../runtime/spawn.js";
import { removeDir, runCli, tempDir, type CliResult } from "../helpers/cluster.js";
import { lastCheckpoint, sampleText, writeTinyConfig } from "../helpers/training.js";

/** Exits non-zero with exactly one line on stderr, naming `path`. */
function expectOneLine(r: CliResult, path: string): void {
  expect(r.code, r.stderr).not.toBe(0);
  const lines = r.stderr.trimEnd().split("\n");
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^aze-run: /);
  expect(lines[0]).toContain(path);
  expect(lines[0]).not.toMatch(/\bat \S+:\d+/);
}

describe("CLI errors", () => {
  const cwd = tempDir();
  afterAll(() => removeDir(cwd));

  it("prepares shards into `--out shards/` (trailing slash)", async () => {
    expect((await runCli(["tokenizer", "train", "--input", sampleText, "--vocab-size", "300", "--out", "tok.json"], cwd)).code).toBe(0);
    const prep = await runCli(["data", "prepare", "--tokenizer", "tok.json", "--source", `az=${sampleText}`, "--out", "shards/"], cwd);
    expect(prep.code, prep.stderr).toBe(0);
    expect(existsSync(join(cwd, "shards", "manifest.json"))).toBe(true);
  });

  it("cleans into a missing folder: one line naming the output", async () => {
    expectOneLine(await runCli(["corpus", "clean", "--in", sampleText, "--out", "/missing-dir/x.txt"], cwd), "/missing-dir/x.txt");
  });

  it("evaluates on a missing file: one line naming it", async () => {
    const config = writeTinyConfig(cwd, { steps: 2 });
    expect((await runCli(["train", "--local", "--config", config, "--run", "m"], cwd, 120_000)).code).toBe(0);
    const r = await runCli(["eval", "--checkpoint", lastCheckpoint(join(cwd, "runs", "m")), "--data", "/missing.txt"], cwd);
    expectOneLine(r, "/missing.txt");
    expect(r.stderr).toMatch(/check the path/);
  });

  it("prints the package version", async () => {
    const { version } = JSON.parse(readFileSync(join(packageRoot, "package.json"), "utf8"));
    const r = await runCli(["--version"], cwd);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(version);
  });
});
