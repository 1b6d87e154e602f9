// The CLI loads only what a command uses: `--help` parses the command line with commander
// alone, and `cluster status` asks a live run with NATS and msgpack but without zod, the
// model or the dashboard. Checked by the modules a command imports (recorded by
// test/helpers/record-imports.mjs), not by timing, which a busy machine would blur.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { removeDir, runCli, tempDir } from "../helpers/cluster.js";

const recorder = pathToFileURL(join(import.meta.dirname, "..", "helpers", "record-imports.mjs")).href;

/** Runs the CLI and returns its exit code and the packages (under node_modules) it imported. */
async function packagesLoaded(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string; packages: string[] }> {
  const log = join(cwd, `imports-${args.join("-")}.log`);
  const r = await runCli(args, cwd, 60_000, { NODE_OPTIONS: `--import=${recorder}`, AZE_IMPORTS_LOG: log });
  const urls = readFileSync(log, "utf8").split("\n").filter(Boolean);
  const packages = new Set(urls.flatMap((u) => /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(u)?.[1] ?? []));
  return { ...r, packages: [...packages].sort() };
}

const heavy = (p: string) => ["ink", "react", "zod", "msgpackr"].includes(p) || p.startsWith("@nats-io/");

describe("the CLI loads only what a command uses", () => {
  const cwd = tempDir();
  afterAll(async () => {
    await runCli(["cluster", "down", "--run", "lean"], cwd);
    removeDir(cwd);
  });

  it("prints help with commander alone: no ink, react, zod, msgpackr or NATS", async () => {
    const r = await packagesLoaded(["--help"], cwd);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Usage: aze-run");
    expect(r.packages).toContain("commander");
    expect(r.packages.filter(heavy)).toEqual([]);
  });

  it("asks a live run for its status with NATS and msgpack, but without zod, ink or react", async () => {
    const up = await runCli(["cluster", "up", "--empty", "--detach", "--run", "lean"], cwd);
    expect(up.stderr).toBe("");
    const r = await packagesLoaded(["cluster", "status", "--run", "lean"], cwd);
    expect(r.stderr).toBe("");
    expect(r.stdout).toContain("trains nothing (started with --empty)");
    expect(r.packages).toEqual(expect.arrayContaining(["@nats-io/transport-node", "msgpackr"]));
    expect(r.packages.filter((p) => ["ink", "react", "zod"].includes(p))).toEqual([]);
  });
});
