// `cluster up --detach`, `status --json`, `scale`, `down` through the real CLI: every actor
// is a real process on a real nats-server, and `down` leaves none of them behind.
import { afterAll, describe, expect, it } from "vitest";
import { isAlive } from "../../runtime/cluster.js";
import { pgrep, removeDir, runCli, tempDir, waitFor } from "../helpers/cluster.js";

interface StatusJson {
  natsUrl: string;
  actors: { kind: string; id: string; pid: number; host: string; state: string; lastHeartbeat: number }[];
}

describe("cluster CLI", () => {
  const cwd = tempDir();
  afterAll(async () => {
    await runCli(["cluster", "down", "--run", "cli"], cwd);
    removeDir(cwd);
  });

  const status = async (): Promise<StatusJson> => {
    const r = await runCli(["cluster", "status", "--run", "cli", "--json"], cwd);
    expect(r.stderr).toBe("");
    return JSON.parse(r.stdout) as StatusJson;
  };
  const count = (s: StatusJson, kind: string) => s.actors.filter((a) => a.kind === kind).length;

  it("starts, lists, scales and stops a run with nothing left behind", async () => {
    const up = await runCli(["cluster", "up", "--empty", "--detach", "--compute", "2", "--run", "cli"], cwd);
    expect(up.stderr).toBe("");
    expect(up.code).toBe(0);

    const s = await status();
    expect(count(s, "coordinator")).toBe(1);
    expect(count(s, "param-shard")).toBe(1);
    expect(count(s, "data-loader")).toBe(1);
    expect(count(s, "compute")).toBe(2);
    expect(count(s, "node-agent")).toBe(1);
    for (const a of s.actors) {
      expect(a).toMatchObject({
        kind: expect.any(String),
        id: expect.any(String),
        pid: expect.any(Number),
        host: expect.any(String),
        state: "ready",
        lastHeartbeat: expect.any(Number),
      });
      expect(isAlive(a.pid)).toBe(true);
      expect(Date.now() - a.lastHeartbeat).toBeLessThan(3000);
    }
    // nats-server runs as `nats-server -c <run>/nats-server.conf`: find this run's one.
    const serverPattern = `${cwd}/runs/cli/nats-server.conf`;
    expect(pgrep(serverPattern)).toHaveLength(1);

    expect((await runCli(["cluster", "scale", "--run", "cli", "--compute", "3"], cwd)).code).toBe(0);
    await waitFor("3 compute actors", async () => count(await status(), "compute") === 3 || undefined);
    expect((await runCli(["cluster", "scale", "--run", "cli", "--compute", "1"], cwd)).code).toBe(0);
    const after = await waitFor("1 compute actor", async () => {
      const st = await status();
      return count(st, "compute") === 1 ? st : undefined;
    });
    const pids = after.actors.map((a) => a.pid);

    const down = await runCli(["cluster", "down", "--run", "cli"], cwd);
    expect(down.code).toBe(0);
    expect(pids.filter(isAlive)).toEqual([]);
    expect(pgrep(serverPattern)).toEqual([]);
  });

  it("says what is wrong in one line for a user mistake", async () => {
    const bad = await runCli(["cluster", "status", "--run", "nope"], cwd);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr.trim().split("\n")).toHaveLength(1);
    expect(bad.stderr).toMatch(/no run named "nope"/);
    const badConfig = await runCli(["cluster", "up", "--config", "missing.yaml"], cwd);
    expect(badConfig.stderr.trim()).toMatch(/^aze-run: cannot read config file missing.yaml/);
  });
});
