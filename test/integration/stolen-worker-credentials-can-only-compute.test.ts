// The threat model of docs/runtime.md, tried as an attacker: what a worker host's
// credentials allow (ask to join, then compute what it is dealt) and what nothing in a run
// allows an actor (send a gradient for groups it was not dealt, in its own name or
// another's, or broadcast parameters as a shard). The run trains on to the same bits.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { decode } from "@nats-io/jwt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { StepMetrics, StepOrder } from "../../actors/protocol.js";
import { clusterDown, clusterScale, clusterUp, connectClient, fetchStatus, isAlive } from "../../runtime/cluster.js";
import { decodeMessage, encodeMessage, encodeTensorChunks, tensorFrom } from "../../runtime/codec.js";
import { readCredentials } from "../../runtime/nats-server.js";
import { connectNats } from "../../runtime/nats.js";
import { cliEntry } from "../../runtime/spawn.js";
import { subjects } from "../../runtime/subjects.js";
import { mintFor, removeDir, tempDir, violations, waitFor } from "../helpers/cluster.js";
import { checkpointParamBytes, lastCheckpoint, referenceBytes, writeTinyConfig } from "../helpers/training.js";

const steps = 8;

describe("stolen worker credentials", () => {
  const cwd = tempDir();
  const runsRoot = join(cwd, "runs");
  const workerHome = tempDir("aze-worker-");
  let config: string;
  let reference: Buffer;

  beforeAll(async () => {
    config = writeTinyConfig(cwd, { steps });
    reference = await referenceBytes(cwd, config);
  }, 240_000);
  afterAll(async () => {
    for (const run of ["forge", "join"]) await clusterDown({ run, runsRoot }).catch(() => undefined);
    removeDir(cwd);
    removeDir(workerHome);
  });

  it("hold no shard or coordinator power: they may only ask to join", async () => {
    const state = await clusterUp({ run: "join", empty: true, compute: 1, detach: true, runsRoot });
    const workerFile = join(state.credsDir!, "worker.json");
    const worker = readCredentials(workerFile);
    expect(readFileSync(workerFile, "utf8")).not.toMatch(/children|password|param-shard|coordinator/);
    const claims = decode<{ pub?: { allow?: string[] }; sub?: { allow?: string[] } }>(worker.jwt!).nats;
    expect(claims.pub?.allow).toEqual([subjects("join").join]);
    expect(claims.sub?.allow).toEqual(["_INBOX.worker.>"]);

    const s = subjects("join");
    const thief = await connectNats({ url: state.natsUrl, creds: worker, name: "join/thief" });
    const errors = violations(thief);
    thief.publish(s.params(0), encodeMessage({ forged: 1 }));
    thief.publish(s.gradients(0, "compute-0"), encodeMessage({ forged: 1 }));
    thief.publish(s.event("node-agent"), encodeMessage({ type: "death", actor: "shard-0" }));
    thief.subscribe(s.all);
    thief.subscribe("_INBOX.>");
    await thief.flush();
    await waitFor("five refusals", () => errors.filter((e) => /permission/i.test(e)).length >= 5 || undefined);
    await thief.close();

    // Joining is what they are for: the joined agent gets compute actors, never a param-shard.
    const joined = spawn(process.execPath, [cliEntry, "worker", "join", "--nats", state.natsUrl, "--creds", workerFile], { cwd: workerHome, stdio: "ignore" });
    const nc = await connectClient(state);
    try {
      const agent = await waitFor("the joined agent", async () =>
        (await fetchStatus(nc, "join")).actors.find((a) => a.kind === "node-agent" && a.pid === joined.pid),
      );
      await clusterScale({ run: "join", compute: 4, runsRoot });
      const actors = await waitFor("4 compute actors, some on the joined host", async () => {
        const all = (await fetchStatus(nc, "join")).actors;
        const computes = all.filter((a) => a.kind === "compute" && a.state === "ready");
        return computes.length === 4 && computes.some((c) => c.agent === agent.id) ? all : undefined;
      });
      expect(actors.filter((a) => a.kind === "param-shard").every((a) => a.agent !== agent.id)).toBe(true);
    } finally {
      await nc.close();
    }
    await clusterDown({ run: "join", runsRoot });
    await waitFor("the worker process to exit", () => joined.exitCode !== null || !isAlive(joined.pid) || undefined, 15_000);
  }, 120_000);

  it("cannot make a shard take a gradient for groups its sender was not dealt", async () => {
    const state = await clusterUp({ run: "forge", config, compute: 1, detach: true, runsRoot, steps });
    const s = subjects("forge");
    const watcher = await connectNats({ url: state.natsUrl, creds: readCredentials(join(state.credsDir!, "coordinator.json")), name: "forge/watch" });
    // A compute identity the run minted (as for an actor placed on a thief's host), never dealt a group.
    const rogue = await connectNats({ url: state.natsUrl, creds: await mintFor(state, "compute", "compute-99"), name: "forge/rogue" });
    const client = await connectClient(state);
    const shard = (await fetchStatus(client, "forge")).actors.find((a) => a.kind === "param-shard")!;
    await client.close();
    const n = Number(shard.end) - Number(shard.start);
    const metrics: StepMetrics[] = [];
    let forged = 0;
    watcher.subscribe(s.metrics, { callback: (_e, m) => void metrics.push(decodeMessage(m.data)) });
    // On every step order, at once (ahead of the honest actor): a NaN gradient for each
    // group in its own name, and one claiming to come from the actor that was dealt it.
    watcher.subscribe(s.step, {
      callback: (_e, m) => {
        const order = decodeMessage<StepOrder>(m.data);
        const [honest] = Object.keys(order.assignment);
        for (let g = 0; g < 4; g++)
          for (const from of ["compute-99", honest!]) {
            const chunks = encodeTensorChunks(
              tensorFrom(new Float32Array(n).fill(Number.NaN), [n]),
              { step: order.step, block: { lo: g, hi: g + 1 }, shard: 0, from },
              1 << 20,
            );
            for (const c of chunks) rogue.publish(s.gradients(0, "compute-99"), c);
            forged++;
          }
      },
    });
    await watcher.flush();
    await waitFor("the last step", () => metrics.find((m) => m.step === steps), 240_000);
    await waitFor("the final checkpoint", () => {
      try {
        return lastCheckpoint(join(runsRoot, "forge")).endsWith(`step-${String(steps).padStart(6, "0")}`) || undefined;
      } catch {
        return undefined;
      }
    });
    expect(forged).toBeGreaterThan(0);
    expect(metrics.every((m) => Number.isFinite(m.loss) && m.update === "applied")).toBe(true);
    expect(checkpointParamBytes(lastCheckpoint(join(runsRoot, "forge"))).equals(reference)).toBe(true);
    const log = readFileSync(join(runsRoot, "forge", "logs", "shard-0.jsonl"), "utf8");
    expect(log).toMatch(/"event":"rejected".*which were not dealt to it/);
    expect(log).toMatch(/"event":"rejected".*sent by compute-99 claims to come from compute-/);
    await rogue.close();
    await watcher.close();
  }, 300_000);
});
