// Membership: actors register with the coordinator; a compute actor killed with SIGKILL is
// reported dead and replaced; a node agent that stops sending heartbeats (SIGSTOP: alive
// but silent) is declared dead when its heartbeat deadline passes. Deaths are logged at warn.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterDown, clusterUp, connectClient, fetchStatus, isAlive, type ClusterState } from "../../runtime/cluster.js";
import { decodeMessage } from "../../runtime/codec.js";
import type { NatsConnection } from "../../runtime/nats.js";
import { subjects } from "../../runtime/subjects.js";
import { removeDir, tempDir, waitFor } from "../helpers/cluster.js";

interface Event {
  type: string;
  actor?: string;
  message: string;
}

describe("actor membership", () => {
  const runsRoot = tempDir();
  let state: ClusterState;
  let nc: NatsConnection;
  const events: Event[] = [];
  const status = () => fetchStatus(nc, "hb");
  /** The lines of an actor's log with this event. */
  const logged = (actor: string, event: string): { level: string; target?: string; id?: string }[] => {
    const file = join(runsRoot, "hb", "logs", `${actor}.jsonl`);
    if (!existsSync(file)) return [];
    return readFileSync(file, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l))
      .filter((l) => l.event === event);
  };

  beforeAll(async () => {
    state = await clusterUp({ run: "hb", empty: true, compute: 2, detach: true, runsRoot });
    nc = await connectClient(state);
    nc.subscribe(subjects("hb").events, {
      callback: (_e, m) => {
        events.push(decodeMessage<Event>(m.data));
      },
    });
    await nc.flush();
  });
  afterAll(async () => {
    await nc?.close();
    await clusterDown({ run: "hb", runsRoot }).catch(() => undefined);
    removeDir(runsRoot);
  });

  it("registers every actor with a live pid and a recent heartbeat", async () => {
    const s = await status();
    expect(s.actors.map((a) => a.kind).sort()).toEqual(["compute", "compute", "coordinator", "data-loader", "node-agent", "param-shard"]);
    for (const a of s.actors) expect(isAlive(a.pid)).toBe(true);
  });

  it("reports a SIGKILLed compute actor dead and starts a replacement", async () => {
    const victim = (await status()).actors.find((a) => a.kind === "compute")!;
    process.kill(victim.pid, "SIGKILL");
    await waitFor("the death event", () => events.find((e) => e.type === "death" && e.actor === victim.id));
    const replaced = await waitFor("two live compute actors again", async () => {
      const computes = (await status()).actors.filter((a) => a.kind === "compute" && a.state === "ready");
      return computes.length === 2 && !computes.some((a) => a.id === victim.id) ? computes : undefined;
    });
    expect(replaced.every((a) => isAlive(a.pid))).toBe(true);
    const actors = (await status()).actors;
    const coordinator = actors.find((a) => a.kind === "coordinator")!.id;
    const agent = actors.find((a) => a.kind === "node-agent")!.id;
    const death = await waitFor("the coordinator's death line", () => logged(coordinator, "event-death").find((l) => l.target === victim.id));
    expect(death.level).toBe("warn");
    const died = await waitFor("the agent's child-died line", () => logged(agent, "child-died").find((l) => l.id === victim.id));
    expect(died.level).toBe("warn");
  });

  it("declares a silent actor dead when its heartbeat deadline passes", async () => {
    const agent = (await status()).actors.find((a) => a.kind === "node-agent")!;
    const stoppedAt = Date.now();
    process.kill(agent.pid, "SIGSTOP");
    try {
      const death = await waitFor("the agent's death", () => events.find((e) => e.type === "death" && e.actor === agent.id), 10_000);
      expect(death.message).toMatch(/missed heartbeats/);
      expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(2500); // not before the 3 s deadline
      expect((await status()).actors.some((a) => a.id === agent.id)).toBe(false);
    } finally {
      process.kill(agent.pid, "SIGCONT");
    }
    // Alive again: its heartbeats bring it back as a member.
    await waitFor("the agent to rejoin", async () => (await status()).actors.some((a) => a.id === agent.id) || undefined);
  });
});
