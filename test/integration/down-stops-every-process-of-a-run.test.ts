// `cluster down` stops every process a run started, whatever state the run reached: here
// its nats-server was restarted by hand as docs/runtime.md describes (a new pid), and the
// node agent and coordinator were SIGKILLed, orphaning the other actors.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { isAlive, readClusterState } from "../../runtime/cluster.js";
import { findNatsServer } from "../../runtime/nats-server.js";
import { pgrep, removeDir, runCli, tempDir, waitFor } from "../helpers/cluster.js";

describe("cluster down", () => {
  const cwd = tempDir();
  const server = "runs/every/nats-server.conf"; // matches the absolute and the relative command line
  const seen: number[] = [];
  afterAll(async () => {
    await runCli(["cluster", "down", "--run", "every"], cwd);
    for (const pid of [...seen, ...pgrep(server)].filter(isAlive)) process.kill(pid, "SIGKILL");
    removeDir(cwd);
  });

  it("stops a restarted nats-server and actors whose agent is gone", async () => {
    const up = await runCli(["cluster", "up", "--empty", "--detach", "--compute", "2", "--run", "every"], cwd);
    expect(up.code, up.stderr).toBe(0);
    const status = async () => {
      const r = await runCli(["cluster", "status", "--run", "every", "--json"], cwd);
      return r.code === 0 ? (JSON.parse(r.stdout) as { actors: { kind: string; pid: number }[] }) : undefined;
    };
    const actors = (await status())!.actors;
    seen.push(...actors.map((a) => a.pid));

    const first = readClusterState("every", join(cwd, "runs"))!.natsPid!;
    seen.push(first);
    process.kill(first, "SIGKILL");
    await waitFor("the first nats-server to exit", () => !isAlive(first) || undefined);
    const restarted = spawn(findNatsServer(), ["-c", server], { cwd, detached: true, stdio: "ignore" });
    restarted.unref();
    seen.push(restarted.pid!);
    await waitFor("the run to answer through the restarted server", status, 60_000);

    for (const a of actors.filter((a) => a.kind === "node-agent" || a.kind === "coordinator")) process.kill(a.pid, "SIGKILL");
    const down = await runCli(["cluster", "down", "--run", "every"], cwd);
    expect(down.code, down.stderr).toBe(0);
    expect(seen.filter(isAlive)).toEqual([]);
    expect(pgrep(server)).toEqual([]);
  }, 180_000);
});
