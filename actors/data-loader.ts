// The data-loader actor. Owns: memory-mapped token shards of the run's data.
//
// Serves micro-batch (step, group, index) as a pure function of (seed, step, group, index):
// the corpus's seeded permutation picks the sequences, and the masking (model/masking.ts)
// is applied here, drawn from a counter-based RNG keyed by the sample. Any loader serves
// any request, so loaders share one NATS queue group and a dead one changes no batch.
// Never: keeps state between requests.
import { openData, openPlan, toBytes, type TrainingData } from "../model/training.js";
import { Actor } from "../runtime/actor.js";
import { decodeChecked } from "../runtime/codec.js";
import { batchRequestSchema, workerOptionsSchema, type BatchReply } from "./protocol.js";

export class DataLoader extends Actor {
  private readonly options = workerOptionsSchema.parse(this.spec.options);
  private data?: TrainingData;
  private served = 0;

  protected override async onStart(): Promise<void> {
    // A run without a training config only lives: registers, heartbeats, obeys stop.
    if (!this.options.training) return;
    const data = openData(openPlan(this.options.training));
    this.data = data;
    this.nc.subscribe(this.subjects.batch, {
      queue: "data-loaders",
      callback: (_e, msg) => {
        let reply: BatchReply;
        try {
          const req = decodeChecked(batchRequestSchema, msg.data, "a batch request");
          reply = { ok: true, ...toBytes(data.maskedBatch(req.step, req.group, req.index)) };
          this.served++;
        } catch (err) {
          this.log.warn("rejected", { reason: (err as Error).message });
          reply = { ok: false, error: (err as Error).message };
        }
        msg.respond(this.encode(reply));
      },
    });
  }

  protected override status(): Record<string, unknown> {
    return { served: this.served };
  }

  protected override async onStop(): Promise<void> {
    this.data?.close();
  }
}
