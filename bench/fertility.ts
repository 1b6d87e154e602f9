// bench fertility — tokens per whitespace word on held-out text of our WordPiece, BPE and
// byte-level BPE against SentencePiece BPE trained on the same text, cased and lowercased,
// at one vocabulary size (32,000), in one run. The text is ../shared/data/az-train.txt:
// every tenth line is held out, the rest trains. bench/data.ts runs it after its own
// figures; `node dist/bench/fertility.js` runs it alone.
//
// SentencePiece is Debian's python3-sentencepiece (`apt-get install python3-sentencepiece`);
// where Python cannot import it, its column says so and the rest is measured.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { BpeTokenizer, bpeWords, trainBpe, type BpeKind } from "../corpus/bpe.js";
import { azLowercase, countWords, trainWordPiece, WordPieceTokenizer, type Tokenizer } from "../corpus/tokenizer.js";
import { packageRoot } from "../runtime/spawn.js";

const vocabSize = 32_000;

const sentencePiece = `
import json, sys
import sentencepiece as spm
train, held, prefix, vocab = sys.argv[1:5]
spm.SentencePieceTrainer.train(input=train, model_prefix=prefix, vocab_size=int(vocab), model_type="bpe",
    character_coverage=1.0, max_sentence_length=100000, num_threads=2, minloglevel=2)
sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
tokens = words = 0
for line in open(held, encoding="utf-8"):
    line = line.strip()
    if not line: continue
    tokens += len(sp.encode(line))
    words += len(line.split())
print(json.dumps({"tokens": tokens, "words": words}))`;

/** Tokens per whitespace word of `tokenizer` over `lines`. */
function tokensPerWord(tokenizer: Tokenizer, lines: string[]): number {
  let words = 0;
  let tokens = 0;
  for (const line of lines) {
    words += line.trim().split(/\s+/u).length;
    tokens += tokenizer.encode(line).ids.length;
  }
  return tokens / words;
}

export async function fertilityVsSentencePiece(): Promise<void> {
  const source = join(packageRoot, "..", "shared", "data", "az-train.txt");
  if (!existsSync(source))
    return void console.log("fertility: ../shared/data/az-train.txt is not here; skipped (the shipped sample is too small for 32k tokens)");
  const all = readFileSync(source, "utf8")
    .split("\n")
    .filter((l) => l.trim());
  const held = all.filter((_, i) => i % 10 === 9);
  const train = all.filter((_, i) => i % 10 !== 9);
  // Debian's package lands in the system Python, which another python3 on the PATH may hide.
  const python = ["python3", "/usr/bin/python3"].find((p) => spawnSync(p, ["-c", "import sentencepiece"]).status === 0);
  const dir = mkdtempSync(join(tmpdir(), "aze-bench-fertility-"));
  try {
    console.log(
      `fertility: tokens per whitespace word on ${held.length} held-out lines (every tenth of az-train.txt; ${train.length} lines train), ${vocabSize.toLocaleString("en-US")} tokens; ours as "words seen twice or more teach merges (the default) → every word does (--min-word-count 1)"`,
    );
    // Each of ours twice: the default (words seen once teach no merges), then learning from every word.
    console.log("| text | wordpiece | bpe | bytelevel-bpe | SentencePiece BPE |\n| --- | --: | --: | --: | --: |");
    for (const lowercase of [false, true]) {
      const trainFile = join(dir, "train.txt");
      writeFileSync(trainFile, `${train.join("\n")}\n`);
      const row: string[] = [];
      const t0 = performance.now();
      const both = (measure: (minWordCount: number) => number) => `${measure(2).toFixed(3)} → ${measure(1).toFixed(3)}`;
      const wordCounts = await countWords([trainFile], { lowercase });
      row.push(
        both((minWordCount) => tokensPerWord(new WordPieceTokenizer(trainWordPiece(wordCounts, { vocabSize, lowercase, minWordCount }), lowercase), held)),
      );
      for (const kind of ["bpe", "bytelevel-bpe"] as BpeKind[]) {
        const counts = await countWords([trainFile], { lowercase, split: (l) => bpeWords(l, kind, lowercase) });
        row.push(
          both((minWordCount) => {
            const { tokens, merges } = trainBpe(counts, kind, { vocabSize, minWordCount });
            return tokensPerWord(new BpeTokenizer(kind, tokens, merges, lowercase), held);
          }),
        );
      }
      const tOurs = (performance.now() - t0) / 1000;
      if (python) {
        // SentencePiece gets the text already cased the way ours sees it (our Azerbaijani lowercasing, NFC).
        const fold = (l: string) => (lowercase ? azLowercase(l.normalize("NFC")) : l.normalize("NFC"));
        const spTrain = join(dir, "sp-train.txt");
        const spHeld = join(dir, "sp-held.txt");
        writeFileSync(spTrain, `${train.map(fold).join("\n")}\n`);
        writeFileSync(spHeld, `${held.map(fold).join("\n")}\n`);
        const t1 = performance.now();
        const run = spawnSync(python, ["-c", sentencePiece, spTrain, spHeld, join(dir, "sp"), String(vocabSize)], { encoding: "utf8" });
        if (run.status !== 0) row.push(`failed: ${run.stderr.trim().split("\n").at(-1)}`);
        else {
          const r = JSON.parse(run.stdout) as { tokens: number; words: number };
          row.push(`${(r.tokens / r.words).toFixed(3)} (trained in ${((performance.now() - t1) / 1000).toFixed(0)} s)`);
        }
      } else row.push("not installed: `apt-get install python3-sentencepiece`");
      console.log(`| ${lowercase ? "lowercased" : "cased"} | ${row.join(" | ")} |  (ours: ${tOurs.toFixed(0)} s for all six)`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) await fertilityVsSentencePiece();
