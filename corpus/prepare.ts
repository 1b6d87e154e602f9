// Preparing a run's data: train the tokenizer (unless the config names one) and tokenize
// the sources into shards, cached by a hash of everything that goes into them.
//
// Owns: the cache folder `<cache>/data-<hash>/` (shards + tokenizer.json). Never: prepares
// twice what is already prepared: a run with the same sources and settings reuses it.
import { createHash } from "node:crypto";
import { createReadStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { DataConfig } from "../runtime/config.js";
import { UserError } from "../runtime/errors.js";
import { writeShards } from "./shards.js";
import { countWords, loadTokenizer, trainWordPiece, WordPieceTokenizer } from "./tokenizer.js";

export async function trainTokenizer(files: string[], opts: { vocabSize: number; lowercase: boolean; out: string }): Promise<WordPieceTokenizer> {
  for (const f of files) if (!existsSync(f)) throw new UserError(`input ${f} does not exist.`);
  const counts = await countWords(files, { lowercase: opts.lowercase });
  const tokenizer = new WordPieceTokenizer(trainWordPiece(counts, { vocabSize: opts.vocabSize, lowercase: opts.lowercase }), opts.lowercase);
  writeFileSync(`${opts.out}.tmp`, tokenizer.toJSON());
  renameSync(`${opts.out}.tmp`, opts.out);
  return loadTokenizer(opts.out);
}

/** Tokenizes sources (one document per line; blank lines are skipped) into a shards folder. */
export async function prepareShards(tokenizer: WordPieceTokenizer, sources: { name: string; path: string; upscale: number }[], outDir: string, tokenizerJson: string): Promise<void> {
  for (const s of sources) if (!existsSync(s.path)) throw new UserError(`source ${s.name}: ${s.path} does not exist.`);
  await writeShards(outDir, { tokenizerHash: tokenizer.hash, vocabSize: tokenizer.vocabSize }, sources, async (name, writer) => {
    const source = sources.find((s) => s.name === name)!;
    const lines = createInterface({ input: createReadStream(source.path, { encoding: "utf8" }), crlfDelay: Infinity });
    for await (const line of lines) if (line.trim()) writer.addDocument(tokenizer.encode(line).ids);
  }, { "tokenizer.json": tokenizerJson });
}

/**
 * The shards folder and tokenizer for a run's data section, prepared on first use and
 * found in `cacheDir` afterwards.
 */
export async function ensurePrepared(data: DataConfig, cacheDir: string): Promise<{ shardsDir: string; tokenizerPath: string }> {
  if (data.shards) {
    const tokenizerPath = join(data.shards, "tokenizer.json");
    if (!existsSync(tokenizerPath)) throw new UserError(`data.shards ${data.shards} has no tokenizer.json: prepare it with \`aze-run data prepare\`.`);
    return { shardsDir: data.shards, tokenizerPath };
  }
  const sources = data.sources!;
  const hash = createHash("sha256");
  hash.update(JSON.stringify({ v: 1, type: data.tokenizerType, vocab: data.vocabSize, tokenizer: data.tokenizer ?? null, sources: sources.map((s) => [s.name, s.upscale]) }));
  for (const s of sources) {
    if (!existsSync(s.path)) throw new UserError(`data source ${s.name}: ${s.path} does not exist.`);
    hash.update(readFileSync(s.path));
  }
  if (data.tokenizer) hash.update(readFileSync(data.tokenizer));
  const dir = join(cacheDir, `data-${hash.digest("hex").slice(0, 16)}`);
  const tokenizerPath = join(dir, "tokenizer.json");
  if (existsSync(join(dir, "manifest.json")) && existsSync(tokenizerPath)) return { shardsDir: dir, tokenizerPath };
  if (data.tokenizerType !== "wordpiece") throw new UserError(`data.tokenizerType "${data.tokenizerType}" cannot be trained here yet; use wordpiece or give data.tokenizer.`);
  mkdirSync(cacheDir, { recursive: true });
  const scratch = join(cacheDir, `tokenizer-${process.pid}-${Date.now()}.json`);
  try {
    const tokenizer = data.tokenizer ? loadTokenizer(data.tokenizer) : await trainTokenizer(sources.map((s) => s.path), { vocabSize: data.vocabSize, lowercase: true, out: scratch });
    await prepareShards(tokenizer, sources, dir, readFileSync(data.tokenizer ?? scratch, "utf8"));
  } finally {
    rmSync(scratch, { force: true });
  }
  return { shardsDir: dir, tokenizerPath };
}
