// `cluster status` accepts the coordinator's reply without zod when it is exactly what
// clusterStatusSchema would return unchanged (runtime/run-state.ts isPlainStatus); anything
// else goes through the schema. The fast check must never accept what the schema refuses
// or would change, and must accept the replies coordinators send.
import { describe, expect, it } from "vitest";
import { clusterStatusSchema, type ClusterStatus } from "../../actors/protocol.js";
import { isPlainStatus } from "../../runtime/run-state.js";

const actor = { kind: "compute", id: "compute-1", pid: 42, host: "h", state: "ready", time: 1, lastHeartbeat: 2 };
const empty: ClusterStatus = { run: "r", desired: { compute: 1 }, actors: [actor as ClusterStatus["actors"][number]] };
const training: ClusterStatus = { ...empty, training: { step: 3, steps: 60, finished: false, lastCheckpoint: "/c/step-000002" } };

const replies: unknown[] = [
  empty,
  training,
  { ...training, training: { ...training.training!, finished: true, stopped: "why" } },
  { ...empty, actors: [{ ...actor, agent: "node-agent-1", mainThreadLagMs: 3, extra: "kept by the loose heartbeat" }] },
  { ...empty, actors: [] },
  { ...empty, extra: 1 },
  { ...training, training: { ...training.training!, extra: 1 } },
  { ...empty, actors: [{ ...actor, state: "asleep" }] },
  { ...empty, actors: [{ ...actor, kind: "wizard" }] },
  { ...empty, actors: [{ ...actor, pid: 1.5 }] },
  { ...empty, desired: { compute: -1 } },
  { ...empty, desired: [] },
  { ...training, training: { ...training.training!, step: "3" } },
  { ...empty, run: 7 },
  { ...empty, actors: {} },
  null,
  [],
  "status",
];

describe("the fast status check", () => {
  it("accepts only what the schema returns unchanged", () => {
    for (const reply of replies) {
      if (!isPlainStatus(reply)) continue;
      const parsed = clusterStatusSchema.safeParse(reply);
      expect(parsed.success).toBe(true);
      expect(parsed.data).toEqual(reply);
    }
  });

  it("accepts the replies of a run that trains and of an --empty one", () => {
    expect(replies.slice(0, 5).every(isPlainStatus)).toBe(true);
  });
});
