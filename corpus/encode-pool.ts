// Encoding lines in parallel: a pool of worker threads, each with its own copy of the
// tokenizer, fed batches of lines in order and answering in any order; the documents are
// handed on strictly in the order their lines were read, so the shards are the same bytes
// whatever the number of workers.
//
// Owns: the workers' lives, the batch order, and back-pressure (at most two batches per
// worker in flight, so a large corpus never sits in memory).
// Never: runs the workers from TypeScript sources: the worker is the compiled
// dist/corpus/encode-worker.js, the same code whoever starts the pool.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { UserError } from "../runtime/errors.js";
import { packageRoot } from "../runtime/spawn.js";
import { parseTokenizer } from "./load-tokenizer.js";

type Deliver = (documents: Int32Array[]) => void;

export interface EncodePool {
  /** Queues lines; `deliver` gets their documents in submission order. Waits while the pool is full. */
  submit(lines: string[], deliver: Deliver): Promise<void>;
  /** Waits until every submitted batch is delivered. */
  drain(): Promise<void>;
  close(): Promise<void>;
}

/** A pool of `workers` threads; 0 encodes on the calling thread (small inputs, tests). */
export function createEncodePool(tokenizerJson: string, origin: string, workers: number): EncodePool {
  if (workers <= 0) {
    const tokenizer = parseTokenizer(tokenizerJson, origin);
    return {
      async submit(lines, deliver) {
        deliver(lines.map((l) => Int32Array.from(tokenizer.encode(l).ids)));
      },
      async drain() {},
      async close() {},
    };
  }
  const script = join(packageRoot, "dist", "corpus", "encode-worker.js");
  if (!existsSync(script)) throw new UserError(`${script} is missing: run \`npm run build\`.`);
  const threads = Array.from({ length: workers }, () => new Worker(script, { workerData: { tokenizerJson, origin } }));
  const waiting = new Map<number, Deliver>(); // submitted, not yet delivered
  const done = new Map<number, Int32Array[]>(); // answered out of turn
  let submitted = 0;
  let delivered = 0;
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  const notify = () => {
    wake?.();
    wake = undefined;
  };
  for (const t of threads) {
    t.on("message", ({ id, docs }: { id: number; docs: Int32Array[] }) => {
      done.set(id, docs);
      while (done.has(delivered)) {
        waiting.get(delivered)!(done.get(delivered)!);
        waiting.delete(delivered);
        done.delete(delivered);
        delivered++;
      }
      notify();
    });
    t.on("error", (err) => {
      failure = err;
      notify();
    });
  }
  const until = async (ready: () => boolean) => {
    while (!ready() && !failure) await new Promise<void>((resolve) => (wake = resolve));
    if (failure) throw failure;
  };
  return {
    async submit(lines, deliver) {
      await until(() => submitted - delivered < 2 * workers);
      const id = submitted++;
      waiting.set(id, deliver);
      threads[id % workers]!.postMessage({ id, lines });
    },
    drain: () => until(() => delivered === submitted),
    async close() {
      await Promise.all(threads.map((t) => t.terminate()));
    },
  };
}
