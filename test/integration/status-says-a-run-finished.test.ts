// `cluster up` without --config refuses to start a cluster that would train nothing (unless
// --empty asks for one), and `cluster status` says where training stands: once the run
// has done its last step, "finished: step N of N" and its last checkpoint, in text and JSON.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { pgrep, removeDir, runCli, tempDir, waitFor } from "../helpers/cluster.js";
import { writeTinyConfig } from "../helpers/training.js";

interface StatusJson {
  actors: { kind: string; state: string }[];
  training?: { step: number; steps: number; finished: boolean; lastCheckpoint?: string };
}

describe("cluster status of a training run", () => {
  const cwd = tempDir();
  afterAll(async () => {
    for (const run of ["nothing", "done"]) await runCli(["cluster", "down", "--run", run], cwd);
    removeDir(cwd);
  });

  it("is not started without --config unless --empty asks for it", async () => {
    const up = await runCli(["cluster", "up", "--detach", "--run", "nothing"], cwd);
    expect(up.code).not.toBe(0);
    expect(up.stderr.trim()).toMatch(/^aze-run: cluster up needs --config FILE.*--empty/);
    expect(existsSync(join(cwd, "runs", "nothing", "cluster.json"))).toBe(false);
    expect(pgrep(`${cwd}/runs/nothing/`)).toEqual([]);
  });

  it("says the run finished, at which step, and its last checkpoint", async () => {
    const config = writeTinyConfig(cwd, { steps: 3 });
    const up = await runCli(["cluster", "up", "--config", config, "--detach", "--run", "done"], cwd, 240_000);
    expect(up.code, up.stderr).toBe(0);
    const json = await waitFor(
      "status --json to say the run finished",
      async () => {
        const r = await runCli(["cluster", "status", "--run", "done", "--json"], cwd);
        const s = JSON.parse(r.stdout) as StatusJson;
        return s.training?.finished ? s : undefined;
      },
      240_000,
    );
    expect(json.training).toMatchObject({ step: 3, steps: 3, finished: true, lastCheckpoint: join(cwd, "runs", "done", "checkpoints", "step-000003") });
    const text = await runCli(["cluster", "status", "--run", "done"], cwd);
    expect(text.stdout).toContain("finished: step 3 of 3, last checkpoint runs/done/checkpoints/step-000003");
  }, 300_000);
});
