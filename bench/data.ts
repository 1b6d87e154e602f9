// bench:data — tokenizer training throughput (MB/s), encoding throughput (MB/s) and
// micro-batch assembly (tokens/s) on a corpus it generates: ≥ 50 MB made by resampling the
// lines of ../shared/data/az-train.txt where it exists (else the shipped sample text).
// Encoding is also timed against the Hugging Face tokenizers library on the same lines.
// Then bench/fertility.ts: tokens per word of ours against SentencePiece BPE, cased and lowercased.
import { Tokenizer } from "@huggingface/tokenizers";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { openTrainingData } from "../corpus/dataset.js";
import { prepareShards } from "../corpus/prepare.js";
import { countWords, trainWordPiece, WordPieceTokenizer } from "../corpus/tokenizer.js";
import { counterHash } from "../model/counter-hash.js";
import { fertilityVsSentencePiece } from "./fertility.js";
import { packageRoot } from "../runtime/spawn.js";

const targetBytes = 50 * 1024 * 1024;
const shared = join(packageRoot, "..", "shared", "data", "az-train.txt");
const seedFile = existsSync(shared) ? shared : join(packageRoot, "corpus", "sample", "az-sample.txt");
const lines = readFileSync(seedFile, "utf8")
  .split("\n")
  .filter((l) => l.trim());
const dir = mkdtempSync(join(tmpdir(), "aze-bench-data-"));
try {
  const corpus = join(dir, "corpus.txt");
  const out: string[] = [];
  let bytes = 0;
  for (let i = 0; bytes < targetBytes; i++) {
    const line = lines[counterHash(7, i) % lines.length]!;
    out.push(line);
    bytes += Buffer.byteLength(line) + 1;
  }
  writeFileSync(corpus, `${out.join("\n")}\n`);
  const mb = statSync(corpus).size / 1e6;
  console.log(
    `bench:data — ${mb.toFixed(1)} MB resampled from ${seedFile.includes("shared") ? "shared/data/az-train.txt" : "the shipped sample"} (${lines.length} distinct lines)`,
  );

  let t0 = performance.now();
  const counts = await countWords([corpus], { lowercase: true });
  const tCount = performance.now() - t0;
  t0 = performance.now();
  const tokenizer = new WordPieceTokenizer(trainWordPiece(counts, { vocabSize: 8000, lowercase: true }), true);
  const tMerge = performance.now() - t0;
  console.log(
    `tokenizer training: ${(mb / ((tCount + tMerge) / 1000)).toFixed(2)} MB/s (word counting ${(mb / (tCount / 1000)).toFixed(2)} MB/s over ${counts.size} distinct words, ${tokenizer.vocabSize} tokens learned in ${(tMerge / 1000).toFixed(1)} s)`,
  );

  const tokenizerFile = join(dir, "tokenizer.json");
  writeFileSync(tokenizerFile, tokenizer.toJSON());
  const shardRate = async (workers: number, out: string) => {
    const t = performance.now();
    await prepareShards(tokenizerFile, [{ name: "bench", path: corpus, upscale: 1 }], join(dir, out), { workers });
    return mb / ((performance.now() - t) / 1000);
  };
  const threads = availableParallelism();
  const onMain = await shardRate(0, "shards-main");
  const pooled = await shardRate(threads, "shards");
  const same = readFileSync(join(dir, "shards-main", "bench", "tokens.bin")).equals(readFileSync(join(dir, "shards", "bench", "tokens.bin")));
  console.log(
    `encoding into shards: ${onMain.toFixed(2)} MB/s on the main thread, ${pooled.toFixed(2)} MB/s with ${threads} worker threads (×${(pooled / onMain).toFixed(2)}; ${same ? "the same bytes" : "DIFFERENT BYTES"})`,
  );

  // The reference: the Hugging Face tokenizers library (JavaScript) encoding the same lines
  // with our tokenizer.json, in this run. Both encode 5 MB, one line at a time.
  const sample = out.slice(0, Math.ceil((out.length * 5) / mb));
  const sampleMb = Buffer.byteLength(sample.join("\n")) / 1e6;
  const hf = new Tokenizer(JSON.parse(tokenizer.toJSON()), {});
  t0 = performance.now();
  for (const line of sample) tokenizer.encode(line);
  const tOurs = performance.now() - t0;
  t0 = performance.now();
  for (const line of sample) hf.encode(line, { add_special_tokens: false });
  const tHf = performance.now() - t0;
  console.log(
    `encoding ${sampleMb.toFixed(1)} MB line by line: ours ${(sampleMb / (tOurs / 1000)).toFixed(2)} MB/s, @huggingface/tokenizers ${(sampleMb / (tHf / 1000)).toFixed(2)} MB/s, ratio ${(tHf / tOurs).toFixed(2)}`,
  );

  const data = openTrainingData(join(dir, "shards"), 128);
  t0 = performance.now();
  let tokens = 0;
  for (let s = 0; s < 20_000; s += 16) tokens += data.microBatch(1, s, 16).inputIds.length;
  console.log(
    `micro-batch assembly (16 × 128, seeded permutation over ${data.sequences} sequences): ${(tokens / ((performance.now() - t0) / 1000) / 1e6).toFixed(2)}M tokens/s`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}

await fertilityVsSentencePiece();
