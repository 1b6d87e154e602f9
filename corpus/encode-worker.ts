// A worker thread of the encoding pool (encode-pool.ts): builds the tokenizer from the
// tokenizer.json text it is given, then encodes batches of lines into one flat int32
// array and the documents' lengths, handed back without a copy.
import { parentPort, workerData } from "node:worker_threads";
import { parseTokenizer } from "./load-tokenizer.js";

const tokenizer = parseTokenizer(workerData.tokenizerJson as string, workerData.origin as string);

parentPort!.on("message", ({ id, lines }: { id: number; lines: string[] }) => {
  const docs = lines.map((line) => tokenizer.encode(line).ids);
  const lengths = Int32Array.from(docs, (d) => d.length);
  const flat = new Int32Array(lengths.reduce((a, b) => a + b, 0));
  let at = 0;
  for (const d of docs) {
    flat.set(d, at);
    at += d.length;
  }
  parentPort!.postMessage({ id, flat, lengths }, [flat.buffer, lengths.buffer]);
});
