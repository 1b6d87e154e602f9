// A coordinator SIGKILLed while a run trains is restarted by its node agent, rebuilds where
// the run stands from the cluster (members from heartbeats, the step from the shards'
// versions, the last checkpoint from the run folder), and the run finishes by itself with
// the bits of an undisturbed run. It is killed twice: right after a checkpoint, and in the
// middle of a step, the moment a shard has reduced the step's gradient and waits for a clip
// order the dead coordinator will never send. `cluster status` answers again once it is back.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterDown, clusterUp, connectClient, fetchStatus } from "../../runtime/cluster.js";
import { decodeMessage } from "../../runtime/codec.js";
import { readCredentials } from "../../runtime/nats-server.js";
import { connectNats } from "../../runtime/nats.js";
import { subjects } from "../../runtime/subjects.js";
import type { ClusterEvent, ShardReport, StepOrder } from "../../actors/protocol.js";
import { removeDir, runCli, tempDir, waitFor } from "../helpers/cluster.js";
import { checkpointParamBytes, lastCheckpoint, referenceBytes, writeTinyConfig } from "../helpers/training.js";

const steps = 16;
const run = "coordinator-death";

describe("a coordinator killed mid-run", () => {
  const cwd = tempDir();
  const runsRoot = join(cwd, "runs");
  let config: string;
  let reference: Buffer;

  beforeAll(async () => {
    config = writeTinyConfig(cwd, { steps, every: 4 });
    reference = await referenceBytes(cwd, config);
  }, 240_000);
  afterAll(async () => {
    await clusterDown({ run, runsRoot }).catch(() => undefined);
    removeDir(cwd);
  });

  it("is restarted by its node agent and the run finishes with the same bits", async () => {
    const state = await clusterUp({ run, config, compute: 2, detach: true, runsRoot, steps });
    const nc = await connectNats({ url: state.natsUrl, creds: readCredentials(join(state.credsDir!, "coordinator.json")), name: `${run}/test` });
    const client = await connectClient(state);
    try {
      const events: ClusterEvent[] = [];
      const reports: ShardReport[] = [];
      const s = subjects(run);
      nc.subscribe(s.events, { callback: (_e, m) => void events.push(decodeMessage(m.data)) });
      nc.subscribe(s.shardReports, { callback: (_e, m) => void reports.push(decodeMessage(m.data)) });
      await nc.flush();
      const coordinatorPid = async () => (await fetchStatus(client, run, 1000)).actors.find((a) => a.kind === "coordinator")!.pid;
      const restarted = (before: number) =>
        waitFor(
          "the node agent to restart the coordinator",
          async () => {
            const pid = await coordinatorPid();
            return pid !== before ? pid : undefined;
          },
          60_000,
        );

      // Once right after the checkpoint at step 4...
      const first = await coordinatorPid();
      await waitFor("the checkpoint at step 4", () => events.find((e) => e.type === "checkpoint" && / step 4:/.test(e.message)), 120_000);
      process.kill(first, "SIGKILL");
      const second = await restarted(first);

      // ...and once mid-step: frozen (SIGSTOP) the moment it deals a later step, so it cannot
      // send that step's clip order, and killed once the shard has reduced the step's gradient.
      let frozenAt = -1;
      nc.subscribe(s.step, {
        callback: (_e, m) => {
          const order = decodeMessage<StepOrder>(m.data);
          if (frozenAt < 0 && order.step >= 9) {
            process.kill(second, "SIGSTOP");
            frozenAt = order.step;
          }
        },
      });
      await waitFor("the shard to reduce the frozen coordinator's step", () => reports.find((r) => r.phase === "reduced" && r.step === frozenAt), 120_000);
      process.kill(second, "SIGKILL");
      await restarted(second);

      const end = await waitFor("the run to finish by itself", () => events.find((e) => e.end), 240_000);
      expect(end.end).toBe("finished");
      expect(events.filter((e) => e.type === "info" && /restarted it/.test(e.message))).toHaveLength(2);
      // The second restart found the shard still at the step it had reduced, not applied.
      expect(events.some((e) => e.message.startsWith(`recovered at step ${frozenAt}:`))).toBe(true);

      // The restarted coordinator found the actors that ran on, and placed no second set.
      const status = await fetchStatus(client, run);
      expect(status.training).toMatchObject({ step: steps, steps, finished: true });
      expect(status.actors.filter((a) => a.kind === "compute")).toHaveLength(2);
      expect(status.actors.filter((a) => a.kind === "param-shard")).toHaveLength(1);
      expect(status.actors.filter((a) => a.kind === "data-loader")).toHaveLength(1);
      const cli = await runCli(["cluster", "status", "--run", run], cwd);
      expect(cli.stderr).toBe("");
      expect(cli.stdout).toMatch(new RegExp(`finished: step ${steps} of ${steps}`));
    } finally {
      await client.close();
      await nc.close();
    }
    await clusterDown({ run, runsRoot });
    expect(checkpointParamBytes(lastCheckpoint(join(runsRoot, run))).equals(reference)).toBe(true);
  }, 600_000);
});
