// Preparing a run's data: train the tokenizer (unless the config names one) and tokenize
// the sources into shards, cached by a hash of everything that goes into them.
//
// Owns: the cache folder `<cache>/data-<hash>/` (shards + tokenizer.json). Never: prepares
// twice what is already prepared: a run with the same sources and settings reuses it.
import { createHash } from "node:crypto";
import { createReadStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { DataConfig } from "../runtime/config.js";
import { UserError } from "../runtime/errors.js";
import { writeShards } from "./shards.js";
import { createProgress } from "../runtime/progress.js";
import { BpeTokenizer, bpeWords, trainBpe } from "./bpe.js";
import { createEncodePool } from "./encode-pool.js";
import { loadTokenizer } from "./load-tokenizer.js";
import { assertTextFile } from "./text-check.js";
import { countWords, trainWordPiece, WordPieceTokenizer, type Tokenizer } from "./tokenizer.js";

export const tokenizerTypes = ["wordpiece", "bpe", "bytelevel-bpe"] as const;
export type TokenizerType = (typeof tokenizerTypes)[number];

/** Trains a tokenizer of `type` on files and writes its tokenizer.json atomically. */
export async function trainTokenizer(
  files: string[],
  opts: { type?: TokenizerType; vocabSize: number; lowercase: boolean; out: string; progress?: boolean; minWordCount?: number },
): Promise<Tokenizer> {
  for (const f of files) if (!existsSync(f)) throw new UserError(`input ${f} does not exist.`);
  for (const f of files) assertTextFile(f);
  const type = opts.type ?? "wordpiece";
  const bytes = files.reduce((n, f) => n + statSync(f).size, 0);
  const bar = opts.progress ? createProgress("counting words", bytes, { kind: "bytes" }) : undefined;
  const split = type === "wordpiece" ? undefined : (line: string) => bpeWords(line, type, opts.lowercase);
  const counts = await countWords(files, { lowercase: opts.lowercase, split, onProgress: bar && ((bytes) => bar.update(bytes)) });
  bar?.finish(`(${counts.size} distinct words)`);
  const t0 = performance.now();
  let tokenizer: Tokenizer;
  if (type === "wordpiece")
    tokenizer = new WordPieceTokenizer(
      trainWordPiece(counts, { vocabSize: opts.vocabSize, lowercase: opts.lowercase, minWordCount: opts.minWordCount }),
      opts.lowercase,
    );
  else {
    const { tokens, merges } = trainBpe(counts, type, { vocabSize: opts.vocabSize, minWordCount: opts.minWordCount });
    tokenizer = new BpeTokenizer(type, tokens, merges, opts.lowercase);
  }
  if (opts.progress) process.stderr.write(`learned ${tokenizer.vocabSize} tokens in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  writeFileSync(`${opts.out}.tmp`, tokenizer.toJSON());
  renameSync(`${opts.out}.tmp`, opts.out);
  return loadTokenizer(opts.out);
}

/**
 * Tokenizes sources (one document per line; blank lines are skipped) into a shards folder,
 * with a copy of the tokenizer.json, in `workers` threads (default: one per core; inputs
 * under 1 MB on this thread).
 */
export async function prepareShards(
  tokenizerFile: string,
  sources: { name: string; path: string; upscale: number }[],
  outDir: string,
  opts: { workers?: number; progress?: boolean } = {},
): Promise<void> {
  const tokenizer = loadTokenizer(tokenizerFile);
  const tokenizerJson = readFileSync(tokenizerFile, "utf8");
  for (const s of sources) if (!existsSync(s.path)) throw new UserError(`source ${s.name}: ${s.path} does not exist.`);
  for (const s of sources) assertTextFile(s.path);
  const total = sources.reduce((n, s) => n + statSync(s.path).size, 0);
  const workers = opts.workers ?? (total < 1_000_000 ? 0 : availableParallelism());
  const pool = createEncodePool(tokenizerJson, outDir, workers);
  try {
    await writeShards(
      outDir,
      { tokenizerHash: tokenizer.hash, vocabSize: tokenizer.vocabSize },
      sources,
      async (source, writer) => {
        const bar = opts.progress ? createProgress(`tokenizing ${source.name}`, statSync(source.path).size, { kind: "bytes" }) : undefined;
        const deliver = (docs: Int32Array[]) => {
          for (const d of docs) writer.addDocument(d);
        };
        const lines = createInterface({ input: createReadStream(source.path, { encoding: "utf8" }), crlfDelay: Infinity });
        let batch: string[] = [];
        let bytes = 0;
        for await (const line of lines) {
          bytes += Buffer.byteLength(line) + 1;
          if (line.trim()) batch.push(line);
          if (batch.length === 1000) {
            await pool.submit(batch, deliver);
            batch = [];
            bar?.update(bytes);
          }
        }
        if (batch.length) await pool.submit(batch, deliver);
        await pool.drain();
        bar?.finish(workers > 0 ? `(${workers} threads)` : undefined);
      },
      { "tokenizer.json": tokenizerJson },
    );
  } finally {
    await pool.close();
  }
}

/**
 * The shards folder and tokenizer for a run's data section, prepared on first use and
 * found in `cacheDir` afterwards.
 */
export async function ensurePrepared(
  data: DataConfig,
  cacheDir: string,
  opts: { progress?: boolean } = {},
): Promise<{ shardsDir: string; tokenizerPath: string }> {
  if (data.shards) {
    const tokenizerPath = join(data.shards, "tokenizer.json");
    if (!existsSync(tokenizerPath)) throw new UserError(`data.shards ${data.shards} has no tokenizer.json: prepare it with \`aze-run data prepare\`.`);
    return { shardsDir: data.shards, tokenizerPath };
  }
  const sources = data.sources!;
  const hash = createHash("sha256");
  hash.update(
    JSON.stringify({
      v: 1,
      type: data.tokenizerType,
      vocab: data.vocabSize,
      tokenizer: data.tokenizer ?? null,
      sources: sources.map((s) => [s.name, s.upscale]),
    }),
  );
  for (const s of sources) {
    if (!existsSync(s.path)) throw new UserError(`data source ${s.name}: ${s.path} does not exist.`);
    hash.update(readFileSync(s.path));
  }
  if (data.tokenizer) hash.update(readFileSync(data.tokenizer));
  const dir = join(cacheDir, `data-${hash.digest("hex").slice(0, 16)}`);
  const tokenizerPath = join(dir, "tokenizer.json");
  if (existsSync(join(dir, "manifest.json")) && existsSync(tokenizerPath)) return { shardsDir: dir, tokenizerPath };
  mkdirSync(cacheDir, { recursive: true });
  const scratch = join(cacheDir, `tokenizer-${process.pid}-${Date.now()}.json`);
  try {
    if (!data.tokenizer)
      await trainTokenizer(
        sources.map((s) => s.path),
        { type: data.tokenizerType, vocabSize: data.vocabSize, lowercase: true, out: scratch, progress: opts.progress },
      );
    await prepareShards(data.tokenizer ?? scratch, sources, dir, { progress: opts.progress });
  } finally {
    rmSync(scratch, { force: true });
  }
  return { shardsDir: dir, tokenizerPath };
}
