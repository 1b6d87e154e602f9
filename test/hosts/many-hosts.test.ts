// A run across simulated hosts: four Linux network namespaces on one bridge (netns.ts), the
// first running `cluster up --listen`, the others `cluster join-host`, each with a
// nats-server of its own in the run's NATS cluster (routes over TLS with the run's CA).
// One run goes through the faults a real cluster meets, in order, and must end with the
// parameters of `train --local`, bit for bit:
// - one host's nats-server is SIGKILLed: its actors fail over to another server;
// - one host is cut off past the heartbeat deadline: its actors are declared dead, their
//   groups dealt again; it comes back, and its agent and actors rejoin;
// - one host's route goes through a delaying proxy (50 ms each way), which then stalls 5 s.
// And a client or a server without the run's CA is refused. Needs root and iproute2; where
// namespaces cannot be made the tests are skipped, with the reason printed.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterEventSchema, type ClusterEvent, type ClusterStatus } from "../../actors/protocol.js";
import type { ClusterState } from "../../runtime/cluster.js";
import { decodeMessage } from "../../runtime/codec.js";
import { findNatsServer, readCredentials } from "../../runtime/nats-server.js";
import { connectNats } from "../../runtime/nats.js";
import { subjects } from "../../runtime/subjects.js";
import { makeHostRequest, makeRunTls, signHostRequest } from "../../runtime/tls.js";
import { removeDir, runCli, tempDir, waitFor } from "../helpers/cluster.js";
import { checkpointParamBytes, lastCheckpoint, writeTinyConfig } from "../helpers/training.js";
import { startDelayProxy, type DelayProxy } from "./delay-proxy.js";
import { canMakeHosts, makeHosts, type Host, type Hosts } from "./netns.js";
import { hostDir, startRunOnHosts, type HostRun } from "./run-on-hosts.js";

const can = canMakeHosts();
if (!can.ok) console.log(`skipping the simulated-host tests: ${can.reason}`);

/** Waits for conditions that take as long as a loaded machine makes them: generous, never a pass/fail line. */
const patient = 240_000;

describe.skipIf(!can.ok)("a run across four simulated hosts", () => {
  const cwd = tempDir();
  const run = "mh";
  let hosts: Hosts;
  let h0: Host;
  let config: string;
  let state: ClusterState;
  let r: HostRun;
  let proxy: DelayProxy;
  const events: ClusterEvent[] = [];

  const runDir = () => r.runDir;
  const stepsDone = () => r.stepsDone();
  const metricsLines = () => r.metrics();
  const status = () => r.status();
  const ready = (s: ClusterStatus, kind: string) => s.actors.filter((a) => a.kind === kind && a.state === "ready");
  const stepsPast = (n: number, what: string) => waitFor(what, () => stepsDone() >= n || undefined, patient);

  beforeAll(async () => {
    hosts = await makeHosts(4);
    h0 = hosts.hosts[0]!;
    // Far more steps than the test lets it run: it ends the run itself (`cluster down`
    // checkpoints where it stands) and compares with `train --local` for as many steps.
    config = writeTinyConfig(cwd, { steps: 5000, groups: 8 });
  }, patient);

  afterAll(async () => {
    await r?.nc.close().catch(() => undefined);
    await proxy?.close().catch(() => undefined);
    hosts?.destroy(); // every process in every namespace, the run's servers and actors included
    removeDir(cwd);
  });

  it(
    "joins three hosts with servers of their own and spreads the compute actors over them",
    async () => {
      const h3 = hosts.hosts[3]!;
      r = await startRunOnHosts(hosts, {
        cwd,
        run,
        config,
        computePerHost: 2,
        // The last host's route to the first goes through a proxy on that host (on its
        // loopback, which the first host's certificate names): 50 ms each way.
        joinArgs: async (host, up) => {
          if (host !== h3) return [];
          proxy = await startDelayProxy({
            listenHost: "127.0.0.1",
            targetHost: h0.address,
            targetPort: Number(up.routeUrl!.split(":").pop()),
            delayMs: 50,
            spawnIn: (c, a, o) => hosts.spawnIn(h3, c, a, o),
          });
          // Its server listens for routes on its loopback only: no peer can dial it directly, so
          // its route to the first host is the proxied one, which it dials itself.
          return ["--routes", `nats-route://127.0.0.1:${proxy.port}`, "--route-listen", "127.0.0.1"];
        },
        patienceMs: patient,
      });
      state = r.state;
      expect(state.natsUrl).toBe(`nats://${h0.address}:${new URL(state.natsUrl).port}`);
      expect(state.routeUrl).toMatch(new RegExp(`^nats-route://${h0.address.replace(/\./g, "\\.")}:\\d+$`));
      r.nc.subscribe(subjects(run).events, {
        callback: (_e, m) => {
          const event = clusterEventSchema.safeParse(decodeMessage(m.data));
          if (event.success) events.push(event.data);
        },
      });
      // Each host runs its own server, in one cluster: a server per namespace.
      for (const host of hosts.hosts) expect(hosts.pidsIn(host).filter(isNatsServer), host.name).toHaveLength(1);
      // The first host holds the coordinator, shard and loader: the compute actors go to the others, two each.
      const computes = ready(await status(), "compute");
      const where = JSON.stringify({ computes: computes.map((c) => [c.id, c.agent]), agents: [...r.agentOf].map(([h, a]) => [h.name, a]) });
      for (const host of hosts.hosts.slice(1))
        expect(
          computes.filter((c) => c.agent === r.agentOf.get(host)),
          `${host.name}: ${where}`,
        ).toHaveLength(2);
      const from = stepsDone();
      await stepsPast(from + 3, "three steps with every host");
      // Host-level combining: 8 groups on 6 actors of 3 hosts make one block per host, so the
      // shards take in 3 gradient vectors a step (6 without combining). A step on one actor
      // alone (the first ones, as the actors come up) took in one.
      const lines = metricsLines();
      const alone = lines.find((m) => m.actors.length === 1);
      const withAll = lines.filter((m) => m.actors.length === 6);
      expect(withAll.length).toBeGreaterThan(0);
      if (alone) expect(withAll.some((m) => Math.abs(m.shardBytes! / alone.shardBytes! - 3) < 0.05)).toBe(true);
    },
    patient * 3,
  );

  it(
    "refuses a client, and a server, that do not have the run's CA",
    async () => {
      const client = readCredentials(join(state.credsDir!, "client.json"));
      const { ca: _ca, ...withoutCa } = client;
      await expect(connectNats({ url: state.natsUrl, creds: withoutCa, name: "no-ca", timeoutMs: 10_000 })).rejects.toThrow(/certificate/);
      await expect(connectNats({ url: state.natsUrl, creds: { name: "nobody", ca: client.ca }, name: "no-creds", timeoutMs: 10_000 })).rejects.toThrow(
        /refused the credentials/,
      );
      // Two servers on the last host try to route to the first: one in plain text, one with a
      // certificate from another CA. Neither is let in; the run's own servers are.
      const h3 = hosts.hosts[3]!;
      const otherCa = join(cwd, "other-ca");
      makeRunTls(otherCa, "other", h3.address);
      const trust = readFileSync(join(runDir(), "trust.conf"), "utf8");
      const rogues = [
        { name: "plain", tls: "" },
        {
          name: "stranger",
          tls: `  tls {\n    cert_file: "${otherCa}/server.pem"\n    key_file: "${otherCa}/server.key"\n    ca_file: "${otherCa}/ca.pem"\n    verify: true\n  }\n`,
        },
      ];
      for (const rogue of rogues) {
        const dir = join(cwd, `rogue-${rogue.name}`);
        mkdirSync(dir, { recursive: true });
        const conf = join(dir, "nats.conf");
        writeFileSync(
          conf,
          `server_name: rogue-${rogue.name}\nlisten: "${h3.address}:-1"\ncluster {\n  name: "aze-${run}"\n  listen: "${h3.address}:-1"\n  routes: ["${state.routeUrl}"]\n${rogue.tls}}\n${trust}\n`,
        );
        const log = join(dir, "nats.log");
        const mainLog = join(runDir(), "logs", "nats-server.log");
        const seen = readFileSync(mainLog, "utf8").length;
        const child = hosts.spawnIn(h3, findNatsServer(), ["-c", conf, "-l", log]);
        try {
          // The run's server hangs up on it in the TLS handshake: plain text is no TLS, and a
          // certificate of another CA is a bad certificate.
          const turnedAway = new RegExp(`${h3.address.replace(/\./g, "\\.")}:\\d+ - rid:\\d+ - TLS route handshake error`);
          await waitFor(
            `the run's server to turn away the ${rogue.name} server`,
            () => turnedAway.test(readFileSync(mainLog, "utf8").slice(seen)) || undefined,
            patient,
          );
          // Never let in, it never heard of the run's other servers either.
          const rogueLog = readFileSync(log, "utf8");
          for (const host of hosts.hosts.slice(1, 3)) expect(rogueLog).not.toContain(`${host.address}:`);
        } finally {
          child.kill("SIGKILL");
        }
      }
      // A certificate request signed for a name that is no address is refused before openssl sees it.
      expect(() => signHostRequest(join(runDir(), "tls"), makeHostRequest(join(cwd, "req")), { ips: ["1.2.3.4; rm -rf /"], dns: [] })).toThrow(/not a valid/);
    },
    patient * 2,
  );

  it(
    "goes on when one host's nats-server is SIGKILLed: its actors fail over to another server",
    async () => {
      const h1 = hosts.hosts[1]!;
      const server = hosts.pidsIn(h1).find(isNatsServer)!;
      const theirs = ready(await status(), "compute")
        .filter((c) => c.agent === r.agentOf.get(h1))
        .map((c) => c.id);
      expect(theirs.length).toBeGreaterThan(0);
      const from = stepsDone();
      process.kill(server, "SIGKILL");
      await stepsPast(from + 3, "three steps after the server's death");
      // Its actors, their server gone, computed later steps through another server.
      await waitFor(
        "a step computed by the actors of the host whose server died",
        () =>
          metricsLines()
            .slice(from)
            .some((m) => m.actors.some((a) => theirs.includes(a.id))) || undefined,
        patient,
      );
      expect(hosts.pidsIn(h1).filter(isNatsServer)).toHaveLength(0);
    },
    patient * 2,
  );

  it(
    "declares a host cut off past the heartbeat deadline dead, deals its groups again, and lets it rejoin",
    async () => {
      const h2 = hosts.hosts[2]!;
      const agent = r.agentOf.get(h2)!;
      const theirs = ready(await status(), "compute")
        .filter((c) => c.agent === agent)
        .map((c) => c.id);
      expect(theirs.length).toBeGreaterThan(0);
      const seen = events.length;
      hosts.cut(h2);
      try {
        await waitFor(
          "the cut host's agent and actors to be declared dead",
          () => [...theirs, agent].every((id) => events.slice(seen).some((e) => e.type === "death" && e.actor === id)) || undefined,
          patient,
        );
        const from = stepsDone();
        await stepsPast(from + 2, "two steps without the cut host");
      } finally {
        hosts.restore(h2);
      }
      // Back: its agent heartbeats again, and the coordinator counts it and its actors in again.
      await waitFor(
        "the cut host's agent and a compute actor of it back",
        async () => {
          const s = await status();
          return (ready(s, "node-agent").some((a) => a.id === agent) && ready(s, "compute").some((c) => c.agent === agent)) || undefined;
        },
        patient,
      );
      expect(events.slice(seen).some((e) => e.type === "join" && e.actor === agent)).toBe(true);
    },
    patient * 2,
  );

  it(
    "goes on through a slow route that stalls for 5 s",
    async () => {
      const before = await proxy.stats();
      expect(before.open).toBeGreaterThan(0); // the last host's route to the first is the proxied one
      const from = stepsDone();
      await proxy.stall(5000);
      await stepsPast(from + 3, "three steps after the stall began");
      expect((await proxy.stats()).upBytes).toBeGreaterThan(before.upBytes);
    },
    patient * 2,
  );

  it(
    "ends with the parameters of train --local, bit for bit",
    async () => {
      const down = await runCli(["cluster", "down", "--run", run], hostDir(cwd, h0), patient);
      expect(down.code, down.stderr).toBe(0);
      const checkpoint = lastCheckpoint(runDir());
      const steps = Number(/step-(\d+)$/.exec(checkpoint)![1]);
      expect(steps).toBeGreaterThan(10);
      const local = await runCli(["train", "--local", "--config", config, "--run", "reference", "--steps", String(steps)], cwd, patient);
      expect(local.code, local.stderr).toBe(0);
      const reference = checkpointParamBytes(lastCheckpoint(join(cwd, "runs", "reference")));
      expect(checkpointParamBytes(checkpoint).equals(reference)).toBe(true);
    },
    patient * 2,
  );
});

function isNatsServer(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "nats-server";
  } catch {
    return false;
  }
}
