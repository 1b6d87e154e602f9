// Connections survive a restarted nats-server: subscriptions come back by themselves, and a
// running cluster keeps the same actors (no false deaths while the server was away).
import { spawn } from "node:child_process";
import { afterAll, describe, expect, it } from "vitest";
import { clusterDown, clusterUp, connectClient, fetchStatus, readClusterState } from "../../runtime/cluster.js";
import { encodeMessage, decodeMessage } from "../../runtime/codec.js";
import { findNatsServer } from "../../runtime/nats-server.js";
import { connectNats } from "../../runtime/nats.js";
import { removeDir, startTestServer, tempDir, waitFor } from "../helpers/cluster.js";
import { isAlive } from "../../runtime/cluster.js";
import { join } from "node:path";

describe("reconnect", () => {
  const runsRoot = tempDir();
  afterAll(async () => {
    await clusterDown({ run: "rc", runsRoot }).catch(() => undefined);
    removeDir(runsRoot);
  });

  it("a subscriber receives again after the server is killed and restarted", async () => {
    const server = await startTestServer("rc0");
    try {
      const a = await connectNats({ url: server.url, name: "a", creds: await server.credsOf("coordinator", "a") });
      const b = await connectNats({ url: server.url, name: "b", creds: await server.credsOf("coordinator", "b") });
      const got: number[] = [];
      a.subscribe("aze.rc0.metrics", {
        callback: (_e, m) => {
          got.push(decodeMessage<{ n: number }>(m.data).n);
        },
      });
      await a.flush();
      b.publish("aze.rc0.metrics", encodeMessage({ n: 1 }));
      await waitFor("the first message", () => got.includes(1) || undefined);

      server.stop("SIGKILL");
      await waitFor("the server to die", () => !isAlive(server.pid) || undefined);
      await server.restart();
      await waitFor("both clients to reconnect and deliver", async () => {
        b.publish("aze.rc0.metrics", encodeMessage({ n: 2 }));
        await b.flush().catch(() => undefined);
        return got.includes(2) || undefined;
      });
      await a.close();
      await b.close();
    } finally {
      server.cleanup();
    }
  });

  it("a running cluster keeps the same actors across a server restart", async () => {
    const state = await clusterUp({ run: "rc", empty: true, compute: 2, detach: true, runsRoot });
    const before = await (async () => {
      const nc = await connectClient(state);
      try {
        return await fetchStatus(nc, "rc");
      } finally {
        await nc.close();
      }
    })();

    process.kill(state.natsPid!, "SIGKILL");
    await waitFor("the server to die", () => !isAlive(state.natsPid) || undefined);
    // Longer than the 3 s heartbeat deadline: a coordinator that took silence for death
    // would replace every actor.
    await new Promise((r) => setTimeout(r, 4000));
    const again = spawn(findNatsServer(), ["-c", join(runsRoot, "rc", "nats-server.conf")], { detached: true, stdio: "ignore" });
    again.unref();
    // `cluster down` must find the new server: record it as the run's own.
    const st = readClusterState("rc", runsRoot)!;
    const { writeFileSync } = await import("node:fs");
    writeFileSync(join(runsRoot, "rc", "cluster.json"), JSON.stringify({ ...st, natsPid: again.pid }));

    const after = await waitFor("the coordinator to answer again", async () => {
      const nc = await connectClient(state);
      try {
        return await fetchStatus(nc, "rc", 1000);
      } finally {
        await nc.close();
      }
    });
    const pids = (s: typeof before) => s.actors.map((a) => `${a.id}:${a.pid}`).sort();
    expect(pids(after)).toEqual(pids(before));
    expect(after.actors.every((a) => a.state === "ready")).toBe(true);
  });
});
