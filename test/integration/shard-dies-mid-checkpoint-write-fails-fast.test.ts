// A param-shard killed while it writes its slice of a checkpoint: the checkpoint fails as
// soon as the death is known (not after the 60 s request timeout), its temp folder goes, and
// the rollback and replay that follow end on the same bits as an undisturbed local run.
//
// A tiny model's write lasts milliseconds, so the test holds it with the shards' test hook
// AZE_TEST_HOLD_CHECKPOINT_WRITE: while the named file exists a write waits, and the shard
// leaves `<file>.<id>` to say it is waiting.
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { pgrep, removeDir, runCli, tempDir, waitFor } from "../helpers/cluster.js";
import { checkpointParamBytes, lastCheckpoint, writeTinyConfig } from "../helpers/training.js";

describe("a shard that dies mid-checkpoint", () => {
  const cwd = tempDir();
  const runDir = join(cwd, "runs", "held");
  afterAll(async () => {
    if (existsSync(join(runDir, "cluster.json"))) await runCli(["cluster", "down", "--run", "held"], cwd, 60_000);
    for (const pid of pgrep(`${cwd}/`)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        /* gone already */
      }
    }
    removeDir(cwd);
  }, 90_000);

  it("fails the checkpoint at once, and the run rolls back and ends on the same bits", async () => {
    const config = writeTinyConfig(cwd, { steps: 4, every: 2, shards: 2 });
    const local = await runCli(["train", "--local", "--config", config, "--run", "reference"], cwd, 180_000);
    expect(local.code, local.stderr).toBe(0);

    const hold = join(cwd, "hold");
    writeFileSync(hold, "");
    const env = { AZE_TEST_HOLD_CHECKPOINT_WRITE: hold };
    const up = await runCli(["cluster", "up", "--config", config, "--detach", "--run", "held"], cwd, 240_000, env);
    expect(up.code, up.stderr).toBe(0);
    // Shards are asked in order: shard-0 holds the checkpoint at step 2 while we kill it.
    await waitFor("shard-0 to hold its write", () => existsSync(`${hold}.shard-0`), 240_000);
    const status = JSON.parse((await runCli(["cluster", "status", "--run", "held", "--json"], cwd, 60_000, env)).stdout) as {
      actors: { id: string; pid: number }[];
    };
    process.kill(status.actors.find((a) => a.id === "shard-0")!.pid, "SIGKILL");
    rmSync(hold); // the replacement writes without waiting

    await waitFor(
      "the run to finish",
      async () => {
        const s = JSON.parse((await runCli(["cluster", "status", "--run", "held", "--json"], cwd, 60_000, env)).stdout);
        return s.training?.finished;
      },
      240_000,
    );
    const log = readdirSync(join(runDir, "logs")).find((n) => n.startsWith("coordinator"))!;
    const errors = readFileSync(join(runDir, "logs", log), "utf8")
      .split("\n")
      .filter((l) => l.includes("event-error"));
    // The reason names the death: a request left to time out would say it got no answer.
    expect(errors.join("\n")).toMatch(/checkpoint at step 2 failed: a param-shard died during the write/);
    expect(readdirSync(join(runDir, "checkpoints")).filter((n) => n.includes(".tmp"))).toEqual([]);
    expect(checkpointParamBytes(lastCheckpoint(runDir)).equals(checkpointParamBytes(lastCheckpoint(join(cwd, "runs", "reference"))))).toBe(true);

    const down = await runCli(["cluster", "down", "--run", "held"], cwd, 120_000);
    expect(down.code, down.stderr).toBe(0);
    expect(pgrep(`${runDir}`)).toEqual([]);
  }, 600_000);
});
