// The entry of every actor process: reads its spec, starts the actor of that kind, and
// stops it cleanly on SIGTERM/SIGINT.
import type { Actor, ActorSpec } from "./actor.js";

const raw = process.env.AZE_ACTOR_SPEC;
if (!raw) {
  process.stderr.write("aze-run: actor-main is started by aze-run itself (AZE_ACTOR_SPEC is not set).\n");
  process.exit(2);
}
const spec = JSON.parse(raw) as ActorSpec;
delete process.env.AZE_ACTOR_SPEC; // children of this actor must not inherit its identity

async function create(spec: ActorSpec): Promise<Actor> {
  switch (spec.kind) {
    case "coordinator":
      return new (await import("../actors/coordinator.js")).Coordinator(spec);
    case "param-shard":
      return new (await import("../actors/param-shard.js")).ParamShard(spec);
    case "data-loader":
      return new (await import("../actors/data-loader.js")).DataLoader(spec);
    case "compute":
      return new (await import("../actors/compute.js")).Compute(spec);
    case "node-agent":
      return new (await import("../actors/node-agent.js")).NodeAgent(spec);
  }
}

const actor = await create(spec);
actor.stopOnSignals();
// A failed start is logged and announced by start() itself.
await actor.start().catch(() => process.exit(1));
await actor.whenStopped();
process.exit(0);
