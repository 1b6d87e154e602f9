// Binary input is refused before any work, in one line naming the file and the offset of
// its first byte that is not text: by corpus clean, tokenizer train, data prepare and the
// data preparation of train --local. No output is left behind.
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { removeDir, runCli, tempDir } from "../helpers/cluster.js";
import { sampleText, writeTinyConfig } from "../helpers/training.js";

/** Exits non-zero with one line on stderr: `FILE: not UTF-8 text: byte N (0x..) ...`. */
function expectRefused(r: { code: number; stderr: string }, file: string, offset: number, byte: number): void {
  expect(r.code, r.stderr).not.toBe(0);
  const lines = r.stderr.trimEnd().split("\n");
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toContain(`${file}: not UTF-8 text: byte ${offset} (0x${byte.toString(16).padStart(2, "0")})`);
}

describe("binary input", () => {
  const cwd = tempDir();
  const inputs = ["elf.bin", "random.bin", "nul.txt", "latin1.txt"];
  // A generous limit: a binary that slipped through ran for minutes.
  const run = (args: string[]) => runCli(args, cwd, 60_000);
  beforeAll(() => {
    writeFileSync(join(cwd, "elf.bin"), readFileSync(process.execPath).subarray(0, 200_000));
    const random = randomBytes(200_000);
    random[0] = 0xff; // never valid UTF-8: the offset is known
    writeFileSync(join(cwd, "random.bin"), random);
    // Past the 1 MiB read size, with a two-byte letter across the boundary: only the NUL is refused.
    const text = `${"a".repeat((1 << 20) - 1)}${"ə".repeat(200_000)}\n`;
    writeFileSync(join(cwd, "nul.txt"), `${text}Bakı\u0000\n`);
    writeFileSync(join(cwd, "latin1.txt"), Buffer.concat([Buffer.from("Bakı şəhəri\n"), Buffer.from([0x42, 0x61, 0x6b, 0xfd, 0x0a])]));
  });
  afterAll(() => removeDir(cwd));
  const outputs = () => readdirSync(cwd).filter((f) => !inputs.includes(f) && !f.endsWith(".yaml"));

  it("corpus clean names the first byte that is not text", async () => {
    expectRefused(await run(["corpus", "clean", "--in", "elf.bin", "--out", "a.txt"]), "elf.bin", 0, 0x7f);
    expectRefused(await run(["corpus", "clean", "--in", sampleText, "random.bin", "--out", "a.txt"]), "random.bin", 0, 0xff);
    const nulAt = Buffer.byteLength(`${"a".repeat((1 << 20) - 1)}${"ə".repeat(200_000)}\nBakı`);
    expectRefused(await run(["corpus", "clean", "--in", "nul.txt", "--out", "a.txt"]), "nul.txt", nulAt, 0);
    expectRefused(await run(["corpus", "clean", "--in", "latin1.txt", "--out", "a.txt"]), "latin1.txt", Buffer.byteLength("Bakı şəhəri\nBak"), 0xfd);
    expect(outputs()).toEqual([]);
  });

  it("tokenizer train and data prepare refuse it", async () => {
    expectRefused(await run(["tokenizer", "train", "--input", "elf.bin", "--vocab-size", "300", "--out", "tok.json"]), "elf.bin", 0, 0x7f);
    expect(outputs()).toEqual([]);
    expect((await run(["tokenizer", "train", "--input", sampleText, "--vocab-size", "300", "--out", "tok.json"])).code).toBe(0);
    expectRefused(await run(["data", "prepare", "--tokenizer", "tok.json", "--source", "az=random.bin", "--out", "shards"]), "random.bin", 0, 0xff);
    expect(outputs()).toEqual(["tok.json"]);
  });

  it("train --local refuses it while preparing its data", async () => {
    const config = writeTinyConfig(cwd);
    writeFileSync(config, readFileSync(config, "utf8").replace(JSON.stringify(sampleText), JSON.stringify(join(cwd, "elf.bin"))));
    const r = await run(["train", "--local", "--config", config, "--run", "bin"]);
    expectRefused(r, join(cwd, "elf.bin"), 0, 0x7f);
    expect(existsSync(join(cwd, "runs", "bin", "checkpoints"))).toBe(false);
  });
});
