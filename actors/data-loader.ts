// The data-loader actor. Owns: memory-mapped token shards of the run's data.
//
// Serves micro-batch (step, group, index) as a pure function of (seed, step, group, index):
// the corpus's seeded permutation picks the sequences, and the masking (model/masking.ts)
// is applied here, drawn from a counter-based RNG keyed by the sample. Any loader serves
// any request, so loaders share one NATS queue group and a dead one changes no batch.
// Never: keeps state between requests.
import { Actor } from "../runtime/actor.js";
import type { BatchReply, BatchRequest } from "./protocol.js";
import { openTraining, type TrainingData, type TrainingOptions } from "../model/training.js";

const bytes = (a: Int32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

export class DataLoader extends Actor {
  private data!: TrainingData;
  private served = 0;

  protected override async onStart(): Promise<void> {
    // A run without a training config only lives: registers, heartbeats, obeys stop.
    if (!this.spec.options.configFile) return;
    const training = await openTraining(this.spec.options as unknown as TrainingOptions);
    this.data = training.openData();
    this.nc.subscribe(this.subjects.batch, {
      queue: "data-loaders",
      callback: (_e, msg) => {
        let reply: BatchReply | { ok: false; error: string };
        try {
          const req = this.decode(msg.data);
          const b = this.data.maskedBatch(req.step, req.group, req.index);
          reply = { ok: true, batch: b.batch, seqLen: b.seqLen, inputIds: bytes(b.inputIds), attentionMask: bytes(b.attentionMask), tokenTypeIds: bytes(b.tokenTypeIds), labels: bytes(b.labels) };
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

  private decode(data: Uint8Array): BatchRequest {
    const req = this.decodeBody<BatchRequest>(data, "batch request");
    for (const key of ["step", "group", "index"] as const)
      if (!Number.isSafeInteger(req[key]) || req[key] < 0) throw new Error(`batch request has a bad ${key}: ${JSON.stringify(req[key])}`);
    return req;
  }
}
