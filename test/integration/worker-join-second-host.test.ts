// `worker join` brings a second node agent into a run with the run's worker credentials;
// the coordinator then places new compute actors on it, and `cluster down` stops it too.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { clusterDown, clusterScale, clusterUp, connectClient, fetchStatus, isAlive } from "../../runtime/cluster.js";
import { cliEntry } from "../../runtime/spawn.js";
import { removeDir, runCli, tempDir, waitFor } from "../helpers/cluster.js";

describe("worker join", () => {
  const cwd = tempDir();
  const runsRoot = join(cwd, "runs");
  const workerHome = tempDir("aze-worker-");
  afterAll(async () => {
    await clusterDown({ run: "wj", runsRoot }).catch(() => undefined);
    removeDir(cwd);
    removeDir(workerHome);
  });

  it("adds a node agent that receives compute actors and leaves on down", async () => {
    const state = await clusterUp({ run: "wj", empty: true, compute: 1, detach: true, runsRoot });
    const worker = spawn(process.execPath, [cliEntry, "worker", "join", "--nats", state.natsUrl, "--creds", join(state.credsDir!, "worker.json")], {
      cwd: workerHome,
      stdio: "ignore",
    });
    const nc = await connectClient(state);
    try {
      const agents = await waitFor("two node agents", async () => {
        const a = (await fetchStatus(nc, "wj")).actors.filter((x) => x.kind === "node-agent");
        return a.length === 2 ? a : undefined;
      });
      const joined = agents.find((a) => a.pid === worker.pid)!;
      expect(joined).toBeDefined();

      await clusterScale({ run: "wj", compute: 3, runsRoot });
      const placed = await waitFor("a compute actor on the joined agent", async () => {
        const s = await fetchStatus(nc, "wj");
        const computes = s.actors.filter((x) => x.kind === "compute" && x.state === "ready");
        return computes.length === 3 && computes.some((c) => c.agent === joined.id) ? computes : undefined;
      });
      expect(placed.filter((c) => c.agent === joined.id).length).toBeGreaterThanOrEqual(1);
    } finally {
      await nc.close();
    }
    await clusterDown({ run: "wj", runsRoot });
    await waitFor("the worker process to exit", () => worker.exitCode !== null || !isAlive(worker.pid) || undefined, 15_000);
  });

  it("refuses credentials of the wrong role", async () => {
    const dir = tempDir();
    const { writeFileSync } = await import("node:fs");
    writeFileSync(
      join(dir, "client.json"),
      JSON.stringify({ run: "x", role: "client", name: "client", user: "client", password: "p", url: "nats://127.0.0.1:1" }),
    );
    const r = await runCli(["worker", "join", "--nats", "nats://127.0.0.1:1", "--creds", join(dir, "client.json")], dir);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/needs runs\/<name>\/creds\/worker.json/);
    removeDir(dir);
  });
});
