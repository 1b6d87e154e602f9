// CLI commands of the text pipeline: corpus clean, tokenizer train/fertility, data prepare.
// Each action loads the pipeline it uses when it runs, so that help loads only commander.
import { existsSync, readFileSync } from "node:fs";
import { InvalidArgumentError, type Command } from "commander";
import { UserError } from "../runtime/errors.js";
import type { TokenizerType } from "./prepare.js";

const number =
  (name: string, min = 0, whole = false) =>
  (v: string) => {
    const n = Number(v);
    if (!(whole ? Number.isSafeInteger(n) : Number.isFinite(n)) || n < min)
      throw new InvalidArgumentError(`${name} must be a ${whole ? "whole " : ""}number ≥ ${min}, got "${v}".`);
    return n;
  };

export function registerCorpusCommands(program: Command): void {
  program
    .command("corpus")
    .description("prepare raw text")
    .command("clean")
    .description("NFC, keep Azerbaijani-Latin lines, drop exact and near duplicates and odd lengths")
    .requiredOption("--in <files...>", "input text files, one document per line")
    .requiredOption("--out <file>", "cleaned output")
    .option("--near-dup-threshold <j>", "Jaccard similarity counted as a near duplicate", number("--near-dup-threshold"), 0.8)
    .option("--min-chars <n>", "shortest line kept", number("--min-chars"), 20)
    .option("--max-chars <n>", "longest line kept", number("--max-chars"), 100_000)
    .option("--json", "the report as JSON")
    .action(async (opts: { in: string[]; out: string; nearDupThreshold: number; minChars: number; maxChars: number; json?: boolean }) => {
      const { cleanCorpus } = await import("./clean.js");
      for (const f of opts.in) if (!existsSync(f)) throw new UserError(`input ${f} does not exist.`);
      const report = await cleanCorpus(opts.in, opts.out, { nearDuplicateThreshold: opts.nearDupThreshold, minChars: opts.minChars, maxChars: opts.maxChars });
      if (opts.json) return void process.stdout.write(`${JSON.stringify(report)}\n`);
      process.stdout.write(`lines in ${report.linesIn}, out ${report.linesOut}\n`);
      for (const [why, n] of Object.entries(report.dropped).sort((a, b) => b[1] - a[1])) process.stdout.write(`  dropped ${String(n).padStart(8)}  ${why}\n`);
    });

  const tokenizer = program.command("tokenizer").description("train and measure tokenizers");
  tokenizer
    .command("train")
    .description("train a WordPiece, BPE or byte-level BPE tokenizer and write a Hugging Face tokenizer.json")
    .requiredOption("--input <files...>", "training text")
    .option("--type <type>", "wordpiece, bpe or bytelevel-bpe", "wordpiece")
    .requiredOption("--vocab-size <n>", "vocabulary size, special tokens included", number("--vocab-size", 16))
    .requiredOption("--out <file>", "tokenizer.json to write")
    .option("--no-lowercase", "keep case (default: Azerbaijani-aware lowercasing)")
    .option("--min-word-count <n>", "words seen fewer times teach no merges (1: every word, fewer tokens per word)", number("--min-word-count", 1, true), 2)
    .action(async (opts: { input: string[]; type: string; vocabSize: number; out: string; lowercase: boolean; minWordCount: number }) => {
      const { tokenizerTypes, trainTokenizer } = await import("./prepare.js");
      if (!tokenizerTypes.includes(opts.type as TokenizerType)) throw new UserError(`--type ${opts.type}: use one of ${tokenizerTypes.join(", ")}.`);
      const t = await trainTokenizer(opts.input, {
        type: opts.type as TokenizerType,
        vocabSize: opts.vocabSize,
        lowercase: opts.lowercase,
        out: opts.out,
        progress: true,
        minWordCount: opts.minWordCount,
      });
      process.stdout.write(
        `wrote ${opts.out}: ${opts.type}, ${t.vocabSize} tokens${t.vocabSize < opts.vocabSize ? ` (the text offers no more merges than that)` : ""}\n`,
      );
    });
  tokenizer
    .command("fertility")
    .description("tokens per word, characters per token, share of [UNK]")
    .requiredOption("--tokenizer <file>", "tokenizer.json")
    .requiredOption("--input <file>", "text to measure on")
    .option("--vs <files...>", "other tokenizer.json files to compare")
    .option("--json", "machine-readable output")
    .action(async (opts: { tokenizer: string; input: string; vs?: string[]; json?: boolean }) => {
      const { fertility } = await import("./load-tokenizer.js");
      if (!existsSync(opts.input)) throw new UserError(`input ${opts.input} does not exist.`);
      const text = readFileSync(opts.input, "utf8");
      const rows = [opts.tokenizer, ...(opts.vs ?? [])].map((f) => fertility(f, text));
      if (opts.json) return void process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
      for (const r of rows)
        process.stdout.write(
          `${r.tokenizer}: vocabulary ${r.vocabSize}, ${r.tokensPerWord.toFixed(3)} tokens/word, ${r.charsPerToken.toFixed(2)} chars/token, [UNK] ${(r.unknownShare * 100).toFixed(2)}%\n`,
        );
    });

  program
    .command("data")
    .description("token shards")
    .command("prepare")
    .description("tokenize sources into tokens.bin/offsets.bin per collection and a manifest")
    .requiredOption("--tokenizer <file>", "tokenizer.json")
    .requiredOption("--source <specs...>", "NAME=PATH[:UPSCALE] (one document per line)")
    .requiredOption("--out <dir>", "output folder (written atomically)")
    .option("--workers <n>", "encoding threads (default: one per core; 0 encodes on the main thread)", number("--workers", 0, true))
    .option("--seq-len <n>", "sequence length the real-token share is reported for", number("--seq-len", 8, true), 128)
    .action(async (opts: { tokenizer: string; source: string[]; out: string; workers?: number; seqLen: number }) => {
      const { prepareShards } = await import("./prepare.js");
      const { openShards } = await import("./shards.js");
      const { realTokenShare } = await import("./dataset.js");
      const sources = opts.source.map((spec) => {
        const m = /^([a-z0-9][a-z0-9_-]*)=(.+?)(?::(\d+(?:\.\d+)?))?$/.exec(spec);
        if (!m) throw new UserError(`--source ${spec}: write NAME=PATH or NAME=PATH:UPSCALE (name in lowercase letters, digits, - and _).`);
        return { name: m[1]!, path: m[2]!, upscale: m[3] ? Number(m[3]) : 1 };
      });
      await prepareShards(opts.tokenizer, sources, opts.out, { progress: true, workers: opts.workers });
      process.stdout.write(`wrote ${opts.out}: ${sources.map((s) => `${s.name} ×${s.upscale}`).join(", ")}\n`);
      // What a run would fill: the share of positions that are not padding, per data.packing.
      const { collections } = openShards(opts.out);
      const share = (packing: "none" | "full") => `${(100 * realTokenShare(collections, opts.seqLen, packing)).toFixed(2)}%`;
      process.stdout.write(
        `real-token share at seqLen ${opts.seqLen}: ${share("full")} packed (data.packing: full), ${share("none")} one document a sequence (none)\n`,
      );
    });
}
