// A disk that fills up during a run: the checkpoint that does not fit is one clear error,
// its temp folder is removed, the previous checkpoint still verifies, and a cluster run
// stays up (no actor orphaned) until `cluster down`, which exits 0 and records the run down.
//
// The run folders live on a small tmpfs sized from a measured checkpoint: the first
// checkpoint fits with half a checkpoint to spare, the second does not. The prepared data
// stays outside (data.shards), so only what a run writes counts. Needs root (mount).
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pgrep, removeDir, runCli, tempDir, waitFor } from "../helpers/cluster.js";
import { writeTinyConfig } from "../helpers/training.js";

/** Bytes a folder takes on a tmpfs: each file rounded up to whole pages. */
function pagesOf(dir: string): number {
  let n = 0;
  for (const name of readdirSync(dir)) {
    const st = statSync(join(dir, name));
    n += st.isDirectory() ? pagesOf(join(dir, name)) : Math.ceil(st.size / 4096) * 4096;
  }
  return n;
}

describe("a full disk", () => {
  const cwd = tempDir();
  const mounts: string[] = [];
  let skipped: string | undefined;
  let shardsDir = "";
  let checkpointBytes = 0;

  /** A fresh tmpfs under cwd: room for one checkpoint and a half, plus a little for logs. */
  function smallDisk(name: string): string {
    const dir = join(cwd, name);
    mkdirSync(dir);
    const size = Math.ceil((checkpointBytes * 1.5 + 128 * 1024) / 4096) * 4096;
    const r = spawnSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`mount failed: ${r.stderr}`);
    mounts.push(dir);
    return dir;
  }

  beforeAll(async () => {
    const probe = join(cwd, "probe");
    mkdirSync(probe);
    const r = spawnSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", probe], { encoding: "utf8" });
    if (r.status !== 0) {
      skipped = `mounting a tmpfs is not permitted here (${(r.stderr || r.error?.message || "").trim()})`;
      return;
    }
    spawnSync("umount", [probe]);
    // One ordinary run prepares the data outside the small disks and measures a checkpoint.
    const outside = join(cwd, "outside");
    const measure = await runCli(
      ["train", "--local", "--config", writeTinyConfig(cwd, { steps: 4, every: 2, file: "disk-full-1.yaml" }), "--run", "m", "--steps", "2"],
      cwd,
      120_000,
      {
        AZE_RUNS: outside,
      },
    );
    if (measure.code !== 0) throw new Error(measure.stderr);
    const cache = join(outside, ".cache");
    shardsDir = join(cache, readdirSync(cache).find((n) => n.startsWith("data-"))!);
    checkpointBytes = pagesOf(join(outside, "m", "checkpoints", "step-000002"));
  }, 180_000);

  afterAll(async () => {
    if (existsSync(join(cwd, "cluster-disk", "c", "cluster.json")))
      await runCli(["cluster", "down", "--run", "c"], cwd, 60_000, { AZE_RUNS: join(cwd, "cluster-disk") });
    for (const pid of pgrep(`${cwd}/`)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        /* gone already */
      }
    }
    for (const dir of mounts) if (spawnSync("umount", [dir]).status !== 0) spawnSync("umount", ["-l", dir]);
    removeDir(cwd);
  }, 90_000);

  const noTempFolders = (runDir: string) => readdirSync(join(runDir, "checkpoints")).filter((n) => n.includes(".tmp"));

  it("stops train --local with one line, keeping the previous checkpoint", async (ctx) => {
    if (skipped) {
      console.log(`skipped: ${skipped}`);
      return ctx.skip();
    }
    const disk = smallDisk("local-disk");
    const r = await runCli(
      ["train", "--local", "--config", writeTinyConfig(cwd, { steps: 4, every: 2, dataShards: shardsDir, file: "disk-full-1.yaml" }), "--run", "l"],
      cwd,
      120_000,
      {
        AZE_RUNS: disk,
      },
    );
    const runDir = join(disk, "l");
    expect(r.code).not.toBe(0);
    const lines = r.stderr.trim().split("\n");
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toContain(join(runDir, "checkpoints", "step-000004"));
    expect(lines[0]).toMatch(/no space left/);
    const verify = await runCli(["checkpoint", "verify", join(runDir, "checkpoints", "step-000002")], cwd);
    expect(verify.code, verify.stderr).toBe(0);
    expect(noTempFolders(runDir)).toEqual([]);
  }, 180_000);

  it("leaves a cluster run up with an error event, and cluster down takes it down", async (ctx) => {
    if (skipped) {
      console.log(`skipped: ${skipped}`);
      return ctx.skip();
    }
    const disk = smallDisk("cluster-disk");
    const env = { AZE_RUNS: disk };
    const runDir = join(disk, "c");
    const up = await runCli(
      [
        "cluster",
        "up",
        "--config",
        writeTinyConfig(cwd, { steps: 4, every: 2, shards: 2, dataShards: shardsDir, file: "disk-full-2.yaml" }),
        "--detach",
        "--run",
        "c",
      ],
      cwd,
      240_000,
      env,
    );
    expect(up.code, up.stderr).toBe(0);
    const status = await waitFor(
      "the run to finish",
      async () => {
        const s = JSON.parse((await runCli(["cluster", "status", "--run", "c", "--json"], cwd, 60_000, env)).stdout) as {
          actors: { id: string; state: string; pid: number }[];
          training?: { finished: boolean; lastCheckpoint?: string };
        };
        return s.training?.finished ? s : undefined;
      },
      240_000,
    );
    expect(status.training?.lastCheckpoint).toBe(join(runDir, "checkpoints", "step-000002"));
    // The coordinator said why, once, as an error event, and every actor is still there.
    const coordinatorLog = readdirSync(join(runDir, "logs")).find((n) => n.startsWith("coordinator"))!;
    const errors = readFileSync(join(runDir, "logs", coordinatorLog), "utf8")
      .split("\n")
      .filter((l) => l.includes("event-error"));
    expect(errors.join("\n")).toMatch(/checkpoint at step 4 failed: .*no space left/);
    expect(status.actors.length).toBeGreaterThan(0);
    for (const a of status.actors) expect(a.state, a.id).toBe("ready");
    const verify = await runCli(["checkpoint", "verify", join(runDir, "checkpoints", "step-000002")], cwd);
    expect(verify.code, verify.stderr).toBe(0);
    expect(noTempFolders(runDir)).toEqual([]);

    const down = await runCli(["cluster", "down", "--run", "c"], cwd, 120_000, env);
    expect(down.code, down.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(runDir, "cluster.json"), "utf8")).state).toBe("down");
    expect(pgrep(`${runDir}/`)).toEqual([]);
    expect(pgrep(`${runDir}`)).toEqual([]);
  }, 400_000);
});
