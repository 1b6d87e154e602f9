// A client holding compute credentials publishes 40 small frames to a live shard, each a
// valid first chunk whose envelope claims a 3.9 GiB tensor. The shard rejects every one
// with a logged reason before allocating anything (its virtual memory stays where it was),
// and the run trains on to the end.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { clusterDown, clusterUp, connectClient, fetchStatus } from "../../runtime/cluster.js";
import { decodeMessage, encodeMessage, encodeTensorChunks, tensorFrom } from "../../runtime/codec.js";
import { readCredentials } from "../../runtime/nats-server.js";
import { connectNats, requestMessage } from "../../runtime/nats.js";
import { subjects } from "../../runtime/subjects.js";
import { replySchema, type StepMetrics } from "../../actors/protocol.js";
import { mintFor, removeDir, tempDir, waitFor } from "../helpers/cluster.js";
import { writeTinyConfig } from "../helpers/training.js";

/** VmSize of a process, in bytes, from /proc/<pid>/status. */
function virtualBytes(pid: number): number {
  const kib = /VmSize:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  return Number(kib) * 1024;
}

describe("claimed tensor sizes", () => {
  const cwd = tempDir();
  const runsRoot = join(cwd, "runs");
  afterAll(async () => {
    await clusterDown({ run: "claims", runsRoot }).catch(() => undefined);
    removeDir(cwd);
  });

  it("are checked against the receiver's layout before anything is allocated", async () => {
    const config = writeTinyConfig(cwd, { steps: 8 });
    const state = await clusterUp({ run: "claims", config, compute: 1, detach: true, runsRoot });
    const s = subjects("claims");
    const watcher = await connectNats({ url: state.natsUrl, creds: readCredentials(join(state.credsDir!, "coordinator.json")), name: "claims/test" });
    const metrics: StepMetrics[] = [];
    const ends: string[] = [];
    watcher.subscribe(s.metrics, { callback: (_e, m) => void metrics.push(decodeMessage(m.data)) });
    watcher.subscribe(s.events, { callback: (_e, m) => void ends.push(decodeMessage<{ end?: string }>(m.data).end ?? "") });
    await waitFor("step 1", () => metrics.length > 0, 120_000);
    await requestMessage(watcher, s.command, { type: "pause" }, replySchema);

    const client = await connectClient(state);
    const shard = (await fetchStatus(client, "claims")).actors.find((a) => a.kind === "param-shard")!;
    await client.close();
    const before = virtualBytes(shard.pid);

    const intruder = await connectNats({ url: state.natsUrl, creds: await mintFor(state, "compute", "intruder"), name: "claims/intruder" });
    const [first] = encodeTensorChunks(tensorFrom(new Float32Array(1000), [1000]), { step: 1, block: { lo: 0, hi: 1 }, shard: 0, from: "intruder" }, 2048);
    const real = decodeMessage<Record<string, unknown>>(first!);
    const n = 1_040_000_000; // 3.9 GiB of f32
    for (let i = 0; i < 40; i++)
      intruder.publish(
        s.gradients(0, "intruder"),
        encodeMessage({ ...real, id: `intruder.${i}`, shape: [n], byteLength: n * 4, count: Math.ceil((n * 4) / (real.stride as number)) }),
      );
    await intruder.flush();
    await intruder.close();

    const log = join(runsRoot, "claims", "logs", "shard-0.jsonl");
    const rejected = () => readFileSync(log, "utf8").match(/"event":"rejected".*claims a tensor of f32\[1040000000\], which does not fit this shard/g) ?? [];
    await waitFor("40 rejections in the shard's log", () => rejected().length === 40 || undefined, 60_000);
    expect(virtualBytes(shard.pid) - before).toBeLessThan(1024 ** 3);

    await requestMessage(watcher, s.command, { type: "resume" }, replySchema);
    await waitFor("the end of the run", () => ends.find(Boolean), 240_000);
    expect(ends.find(Boolean)).toBe("finished");
    expect(metrics.at(-1)?.step).toBe(8);
    await watcher.close();
  }, 400_000);
});
