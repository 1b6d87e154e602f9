// The text pipeline from the CLI, as real child processes: clean a mixed-script corpus,
// train a tokenizer, prepare shards; then every kind of damaged shard folder is refused
// with an error that names the file.
import { createHash } from "node:crypto";
import { cpSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { openTrainingData } from "../../corpus/dataset.js";
import { removeDir, runCli, tempDir } from "../helpers/cluster.js";
import { sampleText } from "../helpers/training.js";

describe("data pipeline", () => {
  const cwd = tempDir();
  afterAll(() => removeDir(cwd));

  it("cleans, trains, prepares and serves deterministic batches", async () => {
    writeFileSync(
      join(cwd, "mixed.txt"),
      `${["Bakı Xəzər dənizinin sahilində yerləşən böyük şəhərdir.", "Bakı Xəzər dənizinin sahilində yerləşən böyük şəhərdir.", "Это строка на русском языке, её надо убрать.", "ეს ქართული ტექსტია და აქ არ უნდა იყოს.", "بو عربی الیفباسیندا یازیلمیش بیر سطیردیر"].join("\n")}\n`,
    );
    const clean = await runCli(["corpus", "clean", "--in", "mixed.txt", sampleText, "--out", "clean.txt", "--json"], cwd);
    expect(clean.code, clean.stderr).toBe(0);
    const report = JSON.parse(clean.stdout);
    expect(report.dropped).toMatchObject({ "exact duplicate": 1, "script: cyrillic": 1, "script: georgian": 1, "script: arabic": 1 });
    expect(readFileSync(join(cwd, "clean.txt"), "utf8")).not.toMatch(/[\u0400-\u04ff]/u);

    expect((await runCli(["tokenizer", "train", "--input", "clean.txt", "--vocab-size", "700", "--out", "tok.json"], cwd)).code).toBe(0);
    const fert = await runCli(["tokenizer", "fertility", "--tokenizer", "tok.json", "--input", "clean.txt", "--json"], cwd);
    expect(JSON.parse(fert.stdout)[0].tokensPerWord).toBeGreaterThan(1);
    const prep = await runCli(["data", "prepare", "--tokenizer", "tok.json", "--source", "az=clean.txt:2", "--out", "shards"], cwd);
    expect(prep.code, prep.stderr).toBe(0);

    const data = openTrainingData(join(cwd, "shards"), 32);
    const a = data.microBatch(3, 1000, 4);
    const b = data.microBatch(3, 1000, 4);
    expect(Buffer.from(a.inputIds.buffer).equals(Buffer.from(b.inputIds.buffer))).toBe(true);
    expect(a.inputIds[0]).toBe(data.special.cls);
    expect(Array.from(data.microBatch(3, 1001, 1).inputIds)).toEqual(Array.from(a.inputIds.slice(32, 64)));
    expect(Array.from(data.microBatch(4, 1000, 1).inputIds)).not.toEqual(Array.from(a.inputIds.slice(0, 32)));
  });

  it("trains BPE and byte-level BPE tokenizers; worker threads write the same shards as the main thread", async () => {
    for (const type of ["bpe", "bytelevel-bpe"]) {
      const trained = await runCli(["tokenizer", "train", "--type", type, "--input", sampleText, "--vocab-size", "500", "--out", `${type}.json`], cwd);
      expect(trained.code, trained.stderr).toBe(0);
      expect(trained.stdout).toContain(`wrote ${type}.json: ${type}, 500 tokens`);
      for (const workers of ["0", "2"]) {
        const prep = await runCli(
          ["data", "prepare", "--tokenizer", `${type}.json`, "--source", `az=${sampleText}`, "--out", `${type}-${workers}`, "--workers", workers],
          cwd,
        );
        expect(prep.code, prep.stderr).toBe(0);
      }
      const bytes = (w: string) => readFileSync(join(cwd, `${type}-${w}`, "az", "tokens.bin"));
      expect(bytes("2").equals(bytes("0"))).toBe(true);
      expect(bytes("0").length).toBeGreaterThan(4000);
      expect(openTrainingData(join(cwd, `${type}-2`), 32).microBatch(1, 0, 2).inputIds.length).toBe(64);
    }
    const bad = await runCli(["tokenizer", "train", "--type", "unigram", "--input", sampleText, "--vocab-size", "500", "--out", "u.json"], cwd);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("--type unigram: use one of wordpiece, bpe, bytelevel-bpe");
  });

  it("refuses damaged shard folders, naming the file", () => {
    const damage = (name: string, hurt: (dir: string) => void) => {
      const dir = join(cwd, name);
      cpSync(join(cwd, "shards"), dir, { recursive: true });
      hurt(dir);
      return () => openTrainingData(dir, 32);
    };
    expect(damage("truncated", (d) => truncateSync(join(d, "az", "tokens.bin"), 100))).toThrow(/az\/tokens\.bin has 100 bytes.*truncated/);
    expect(damage("badjson", (d) => writeFileSync(join(d, "manifest.json"), "{oops"))).toThrow(/manifest\.json is not valid JSON/);
    expect(
      damage("flipped", (d) => {
        const f = join(d, "az", "tokens.bin");
        const bytes = readFileSync(f);
        bytes[9]! ^= 1;
        writeFileSync(f, bytes);
      }),
    ).toThrow(/tokens\.bin fails its checksum/);
    expect(
      damage("offsets", (d) => {
        const f = join(d, "az", "offsets.bin");
        const bytes = readFileSync(f);
        bytes.writeBigInt64LE(10n ** 12n, 8);
        writeFileSync(f, bytes);
        const m = JSON.parse(readFileSync(join(d, "manifest.json"), "utf8"));
        m.collections[0].offsetsSha256 = createHash("sha256").update(bytes).digest("hex");
        writeFileSync(join(d, "manifest.json"), JSON.stringify(m));
      }),
    ).toThrow(/offsets\.bin: document offset .* out of range/);
  });
});
