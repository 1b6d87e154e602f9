// A worker thread of the encoding pool (encode-pool.ts): builds the tokenizer from the
// tokenizer.json text it is given, then encodes batches of lines into one int32 array per
// document, handed back without a copy.
import { parentPort, workerData } from "node:worker_threads";
import { parseTokenizer } from "./load-tokenizer.js";

const tokenizer = parseTokenizer(workerData.tokenizerJson as string, workerData.origin as string);

parentPort!.on("message", ({ id, lines }: { id: number; lines: string[] }) => {
  const docs = lines.map((line) => Int32Array.from(tokenizer.encode(line).ids));
  parentPort!.postMessage(
    { id, docs },
    docs.map((d) => d.buffer),
  );
});
