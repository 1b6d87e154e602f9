// Elastic scaling and failures leave the final parameters bitwise identical to an
// undisturbed run: a compute actor SIGKILLed in the middle of a step, scaling 1 → 3 → 1
// while training, a shard SIGKILLed (rollback to the last checkpoint and replay), one of two
// data-loaders SIGKILLed (another serves, a replacement joins), and stopping then resuming
// from a checkpoint with another number of shards.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterDown, clusterScale, clusterUp, connectClient, fetchStatus, readClusterState } from "../../runtime/cluster.js";
import { decodeMessage, encodeMessage, encodeTensorChunks, tensorFrom } from "../../runtime/codec.js";
import { readFileSync } from "node:fs";
import { readCredentials } from "../../runtime/nats-server.js";
import { connectNats, requestMessage, type NatsConnection } from "../../runtime/nats.js";
import { subjects } from "../../runtime/subjects.js";
import { replySchema, snapshotSchema, type StepMetrics, type StepOrder } from "../../actors/protocol.js";
import { mintFor, removeDir, tempDir, waitFor } from "../helpers/cluster.js";
import { checkpointParamBytes, lastCheckpoint, referenceBytes, writeTinyConfig } from "../helpers/training.js";

const steps = 12;

describe("faults and scaling keep the bits", () => {
  const cwd = tempDir();
  const runsRoot = join(cwd, "runs");
  let config: string;
  let reference: Buffer;

  beforeAll(async () => {
    config = writeTinyConfig(cwd, { steps, every: 4 });
    reference = await referenceBytes(cwd, config);
  }, 240_000);
  afterAll(async () => {
    for (const run of ["kill-compute", "scale", "kill-shard", "kill-loader", "resume-a", "resume-b", "garbage"])
      await clusterDown({ run, runsRoot }).catch(() => undefined);
    removeDir(cwd);
  });

  /** Starts a run in the background and watches its training traffic as the coordinator may. */
  async function start(run: string, compute: number, shards = 1, resume?: string, loaders = 1) {
    const state = await clusterUp({ run, config, compute, shards, loaders, detach: true, runsRoot, steps, resume });
    const coordinator = readCredentials(join(state.credsDir!, "coordinator.json"));
    const nc = await connectNats({ url: state.natsUrl, creds: coordinator, name: `${run}/test` });
    const metrics: StepMetrics[] = [];
    const orders: StepOrder[] = [];
    const events: { type: string; message: string; end?: string }[] = [];
    const s = subjects(run);
    nc.subscribe(s.metrics, {
      callback: (_e, m) => {
        metrics.push(decodeMessage(m.data));
      },
    });
    nc.subscribe(s.step, {
      callback: (_e, m) => {
        orders.push(decodeMessage(m.data));
      },
    });
    nc.subscribe(s.events, {
      callback: (_e, m) => {
        events.push(decodeMessage(m.data));
      },
    });
    await nc.flush();
    const finished = () => waitFor(`${run} to finish`, () => events.find((e) => e.end), 240_000);
    return { state, nc, metrics, orders, events, finished };
  }

  /** Pauses the run the moment step `n`'s metrics reach us, so a fault lands mid-run. */
  function pauseAt(r: Awaited<ReturnType<typeof start>>, run: string, n: number): Promise<void> {
    return new Promise((resolve) => {
      const sub = r.nc.subscribe(subjects(run).metrics, {
        callback: (_e, m) => {
          if (decodeMessage<StepMetrics>(m.data).step < n) return;
          sub.unsubscribe();
          void requestMessage(r.nc, subjects(run).command, { type: "pause" }, replySchema).then(() => resolve());
        },
      });
    });
  }

  async function finalBytes(run: string, nc: NatsConnection): Promise<Buffer> {
    await nc.close();
    await clusterDown({ run, runsRoot });
    return checkpointParamBytes(lastCheckpoint(join(runsRoot, run)));
  }

  it("survives a compute actor SIGKILLed in the middle of a step", async () => {
    const r = await start("kill-compute", 2);
    const client = await connectClient(r.state);
    const computes = await waitFor("two compute actors", async () => {
      const c = (await fetchStatus(client, "kill-compute")).actors.filter((a) => a.kind === "compute");
      return c.length === 2 ? c : undefined;
    });
    await client.close();
    // The compute actors measure their backend's peak; the run info carries it, for the dashboard's MFU.
    const peak = await waitFor(
      "the compute actors' peak FLOP/s in the run info",
      async () => (await requestMessage(r.nc, subjects("kill-compute").command, { type: "snapshot" }, snapshotSchema)).run?.backendPeakFlops,
    );
    expect(peak).toBeGreaterThan(1e8);
    const victim = computes.sort((a, b) => a.id.localeCompare(b.id)).at(-1)!;
    // Killed the moment the order for step 4 reaches us: while it computes its groups.
    let killedAt = -1;
    r.nc.subscribe(subjects("kill-compute").step, {
      callback: (_e, m) => {
        const order = decodeMessage<StepOrder>(m.data);
        if (killedAt < 0 && order.step >= 3 && victim.id in order.assignment) {
          process.kill(victim.pid, "SIGKILL");
          killedAt = order.step;
        }
      },
    });
    const end = await r.finished();
    expect(end.end).toBe("finished");
    expect(killedAt).toBeGreaterThanOrEqual(3);
    expect(r.orders.some((o) => o.step === killedAt && o.attempt > 0 && !(victim.id in o.assignment))).toBe(true); // its groups were re-dealt
    expect((await finalBytes("kill-compute", r.nc)).equals(reference)).toBe(true);
  }, 300_000);

  it("scales 1 → 3 → 1 while training", async () => {
    const r = await start("scale", 1);
    await pauseAt(r, "scale", 2); // the new actors surely join before the run ends
    await clusterScale({ run: "scale", compute: 3, runsRoot });
    const client = await connectClient(r.state);
    await waitFor(
      "3 ready compute actors",
      async () => (await fetchStatus(client, "scale")).actors.filter((a) => a.kind === "compute" && a.state === "ready").length === 3 || undefined,
    );
    await client.close();
    await requestMessage(r.nc, subjects("scale").command, { type: "resume" }, replySchema);
    await waitFor("a step dealt to 3 actors", () => r.orders.find((o) => Object.keys(o.assignment).length === 3));
    await clusterScale({ run: "scale", compute: 1, runsRoot });
    await r.finished();
    expect((await finalBytes("scale", r.nc)).equals(reference)).toBe(true);
  }, 300_000);

  it("rolls back and replays when a shard is SIGKILLed", async () => {
    const r = await start("kill-shard", 1, 2);
    await pauseAt(r, "kill-shard", 6); // past the checkpoint at 4, so the kill lands mid-run
    const client = await connectClient(r.state);
    const shard = (await fetchStatus(client, "kill-shard")).actors.find((a) => a.kind === "param-shard")!;
    await client.close();
    process.kill(shard.pid, "SIGKILL");
    await waitFor("the rollback", () => r.events.find((e) => e.type === "rollback"));
    await requestMessage(r.nc, subjects("kill-shard").command, { type: "resume" }, replySchema);
    await r.finished();
    expect(r.events.some((e) => e.type === "rollback")).toBe(true);
    expect((await finalBytes("kill-shard", r.nc)).equals(reference)).toBe(true);
  }, 300_000);

  it("serves the same batches when one of two data-loaders is SIGKILLed and replaced", async () => {
    const r = await start("kill-loader", 1, 1, undefined, 2);
    await pauseAt(r, "kill-loader", 3);
    const client = await connectClient(r.state);
    const loaders = (await fetchStatus(client, "kill-loader")).actors.filter((a) => a.kind === "data-loader");
    expect(loaders).toHaveLength(2);
    process.kill(loaders[0]!.pid, "SIGKILL");
    const replaced = await waitFor("a new data-loader", async () => {
      const now = (await fetchStatus(client, "kill-loader")).actors.filter((a) => a.kind === "data-loader" && a.state === "ready");
      return now.length === 2 && !now.some((a) => a.id === loaders[0]!.id) ? now : undefined;
    });
    await client.close();
    expect(replaced.map((a) => a.pid)).not.toContain(loaders[0]!.pid);
    await requestMessage(r.nc, subjects("kill-loader").command, { type: "resume" }, replySchema);
    expect((await r.finished()).end).toBe("finished");
    expect((await finalBytes("kill-loader", r.nc)).equals(reference)).toBe(true);
  }, 300_000);

  it("resumes from a checkpoint with another number of shards", async () => {
    const a = await start("resume-a", 1, 1);
    await waitFor("step 8", () => a.metrics.find((m) => m.step >= 8));
    await a.nc.close();
    await clusterDown({ run: "resume-a", runsRoot }); // writes a checkpoint where it stands
    const resumeFrom = lastCheckpoint(join(runsRoot, "resume-a"));
    const b = await start("resume-b", 2, 2, resumeFrom);
    await b.finished();
    expect(readClusterState("resume-b", runsRoot)?.state).toBe("up");
    expect((await finalBytes("resume-b", b.nc)).equals(reference)).toBe(true);
  }, 300_000);

  it("rejects and logs malformed gradients from an authenticated client, refuses a stranger, and trains on", async () => {
    const r = await start("garbage", 1);
    await pauseAt(r, "garbage", 2);
    // A step already under way when the pause arrived still finishes: let it.
    await new Promise((done) => setTimeout(done, 1500));
    // An identity a compute actor could have: minted by the run, but never dealt a group.
    const intruder = await connectNats({ url: r.state.natsUrl, creds: await mintFor(r.state, "compute", "intruder"), name: "garbage/intruder" });
    const s = subjects("garbage");
    intruder.publish(s.gradients(0, "intruder"), new Uint8Array([0xc1, 0x00, 0xff])); // not msgpack
    const step = r.metrics.at(-1)!.step;
    const wrongShape = encodeTensorChunks(tensorFrom(new Float32Array(10), [10]), { step, block: { lo: 0, hi: 1 }, shard: 0, from: "intruder" }, 1 << 20);
    for (const c of wrongShape) intruder.publish(s.gradients(0, "intruder"), c);
    // A tensor of the shard's own size gets as far as its meta (a wrong size is refused first).
    const client = await connectClient(r.state);
    const shard = (await fetchStatus(client, "garbage")).actors.find((a) => a.kind === "param-shard")!;
    await client.close();
    const n = Number(shard.end) - Number(shard.start);
    const wrongMeta = encodeTensorChunks(tensorFrom(new Float32Array(n), [n]), { step: "now", block: { lo: 0 }, shard: 0, from: "intruder" }, 1 << 20);
    for (const c of wrongMeta) intruder.publish(s.gradients(0, "intruder"), c);
    intruder.publish(s.groupDone("intruder"), encodeMessage({ step, groups: "all of them" })); // a wrong-shaped report
    intruder.publish(s.step, encodeMessage({ step: 0 })); // compute may not order steps: refused by the server
    await intruder.flush();
    await intruder.close();
    await requestMessage(r.nc, s.command, { type: "resume" }, replySchema);
    await expect(connectNats({ url: r.state.natsUrl, name: "stranger", timeoutMs: 2000 })).rejects.toThrow(/refused/);
    await r.finished();
    const log = readFileSync(join(runsRoot, "garbage", "logs", "shard-0.jsonl"), "utf8");
    expect(log).toMatch(/"event":"rejected".*not valid msgpack/);
    expect(log).toMatch(/"event":"rejected".*does not fit this shard/);
    expect(log).toMatch(/"event":"rejected".*meta has the wrong shape: step/);
    const coordinatorLog = readFileSync(join(runsRoot, "garbage", "logs", "coordinator.jsonl"), "utf8");
    expect(coordinatorLog).toMatch(/"event":"rejected".*train.group-done.intruder has the wrong shape/);
    expect((await finalBytes("garbage", r.nc)).equals(reference)).toBe(true);
  }, 300_000);
});
