// `cluster.verify: 2`: every gradient group is computed by two compute actors and a shard
// accepts a block only when the two copies agree bit for bit. An honest run ends with the
// bits of `train --local`; a run with one lying compute actor (the AZE_TEST_CORRUPT_GRADIENT
// hook flips one bit of everything it sends) ends with the same bits, and the liar is
// outvoted by a third actor, quarantined, stopped and never dealt to again.
import { appendFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterDown, clusterUp } from "../../runtime/cluster.js";
import { decodeMessage } from "../../runtime/codec.js";
import { readCredentials } from "../../runtime/nats-server.js";
import { connectNats } from "../../runtime/nats.js";
import { subjects } from "../../runtime/subjects.js";
import type { ClusterEvent, StepOrder } from "../../actors/protocol.js";
import { removeDir, runCli, tempDir, waitFor } from "../helpers/cluster.js";
import { checkpointParamBytes, lastCheckpoint, writeTinyConfig } from "../helpers/training.js";

const steps = 6;

describe("verify: 2", () => {
  const cwd = tempDir();
  const runsRoot = join(cwd, "runs");
  let config: string;
  let reference: Buffer;

  beforeAll(async () => {
    config = writeTinyConfig(cwd, { steps });
    appendFileSync(config, "  verify: 2\n"); // the last section of the tiny config is `cluster:`
    const local = await runCli(["train", "--local", "--config", config, "--run", "reference"], cwd, 180_000);
    expect(local.code, local.stderr).toBe(0);
    reference = checkpointParamBytes(lastCheckpoint(join(runsRoot, "reference")));
  }, 240_000);
  afterAll(async () => {
    for (const run of ["honest", "liar"]) await clusterDown({ run, runsRoot }).catch(() => undefined);
    removeDir(cwd);
  });

  /**
   * A run of 3 compute actors (with `env` set for its processes), watching its step orders and
   * events, until it ends; `beforeDown` waits for more, then the run is stopped.
   */
  async function start(run: string, env: Record<string, string> = {}, beforeDown = async (_events: ClusterEvent[]): Promise<unknown> => undefined) {
    const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
    Object.assign(process.env, env);
    let state: Awaited<ReturnType<typeof clusterUp>>;
    try {
      state = await clusterUp({ run, config, compute: 3, detach: true, runsRoot, steps });
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
    const nc = await connectNats({ url: state.natsUrl, creds: readCredentials(join(state.credsDir!, "coordinator.json")), name: `${run}/test` });
    const orders: StepOrder[] = [];
    const events: ClusterEvent[] = [];
    nc.subscribe(subjects(run).step, { callback: (_e, m) => void orders.push(decodeMessage(m.data)) });
    nc.subscribe(subjects(run).events, { callback: (_e, m) => void events.push(decodeMessage(m.data)) });
    await nc.flush();
    const end = await waitFor(`${run} to finish`, () => events.find((e) => e.end), 240_000);
    await beforeDown(events);
    await nc.close();
    await clusterDown({ run, runsRoot });
    // Events of the first step may precede the subscription: the coordinator's log has them all.
    const logged = readFileSync(join(runsRoot, run, "logs", "coordinator.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { event: string; target?: string; message?: string });
    return { orders, events, logged, end, bytes: checkpointParamBytes(lastCheckpoint(join(runsRoot, run))) };
  }

  it("deals every group to two actors and ends with the bits of train --local", async () => {
    const r = await start("honest");
    expect(r.end.end, r.end.message).toBe("finished");
    expect(r.bytes.equals(reference)).toBe(true);
    for (const order of r.orders.filter((o) => o.attempt === 0)) {
      const copies = new Map<number, number>();
      for (const held of Object.values(order.assignment)) for (const g of held) copies.set(g, (copies.get(g) ?? 0) + 1);
      expect([...copies.values()], `step ${order.step}`).toEqual([2, 2, 2, 2]);
    }
    // One host: said once, as an event.
    expect(r.logged.filter((e) => e.event === "event-info" && e.message?.includes("pairs compute actors of the same host"))).toHaveLength(1);
    expect(r.logged.some((e) => e.event === "event-quarantine" || e.event === "event-rejected")).toBe(false);
  }, 300_000);

  it("outvotes, quarantines and replaces a compute actor that lies, and keeps the bits", async () => {
    const liar = "compute-1";
    // Its replacement joins: the coordinator replaced the stopped liar (a tiny run may end first).
    const replaced = (events: ClusterEvent[]) => waitFor("the liar's replacement", () => events.find((e) => e.type === "join" && e.actor === "compute-3"));
    const r = await start("liar", { AZE_TEST_CORRUPT_GRADIENT: liar }, replaced);
    expect(r.end.end, r.end.message).toBe("finished");
    // No step was applied from the liar's gradient: every bit is the reference's.
    expect(r.bytes.equals(reference)).toBe(true);
    const quarantined = r.logged.filter((e) => e.event === "event-quarantine");
    expect(quarantined.map((e) => e.target)).toEqual([liar]);
    expect(r.logged.some((e) => e.event === "event-rejected" && e.message?.includes(liar))).toBe(true);
    // A third actor settled it: the two copies that agree come from actors other than the liar.
    // (Its order may precede the test's subscription, as the first step may: the event says it.)
    const agreeing = /the one (\S+) and (\S+) agree on/.exec(quarantined[0]!.message ?? "");
    expect(agreeing, quarantined[0]!.message).not.toBeNull();
    expect([agreeing![1], agreeing![2]]).not.toContain(liar);
    const caughtAt = Number(/of step (\d+)/.exec(quarantined[0]!.message ?? "")?.[1]) - 1; // the message counts steps from 1
    const later = r.orders.filter((o) => o.step > caughtAt);
    expect(later.length).toBeGreaterThan(0);
    expect(later.filter((o) => liar in o.assignment)).toEqual([]);
  }, 300_000);
});
