// Token shards: per collection `tokens.bin` (int32 little-endian token ids, documents back
// to back), `offsets.bin` (int64 little-endian document starts, then the end), and one
// `manifest.json` for the folder (tokenizer hash, counts, checksums, upscale ratios).
//
// Owns: the on-disk format, writing it atomically, and opening it memory-mapped (through
// the corpus/native addon) with every check a damaged folder can fail (each error names
// the file and what to do).
// Never: leaves a half-written folder under the final name.
import { createHash } from "node:crypto";
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { UserError } from "../runtime/errors.js";
import { packageRoot } from "../runtime/spawn.js";

export const shardFormat = "aze-run-shards/1";

export interface CollectionManifest {
  name: string;
  upscale: number;
  documents: number;
  tokens: number;
  tokensSha256: string;
  offsetsSha256: string;
}

export interface ShardsManifest {
  format: typeof shardFormat;
  tokenizerHash: string;
  vocabSize: number;
  collections: CollectionManifest[];
}

export interface CollectionWriter {
  addDocument(ids: ArrayLike<number>): void;
}

/**
 * Writes a shards folder: `fill` adds documents to each collection; the folder appears
 * under `outDir` only when every file is written and fsynced.
 */
export async function writeShards<C extends { name: string; upscale: number }>(
  outDir: string,
  meta: { tokenizerHash: string; vocabSize: number },
  collections: C[],
  fill: (collection: C, writer: CollectionWriter) => Promise<void>,
  /** Files to place beside the shards (the tokenizer.json), written in the same atomic step. */
  extraFiles: Record<string, string> = {},
): Promise<ShardsManifest> {
  // resolve: `shards/` must not put the temporary folder inside the one it replaces.
  const temp = `${resolve(outDir)}.tmp-${process.pid}-${Date.now()}`;
  mkdirSync(temp, { recursive: true });
  try {
    const manifest: ShardsManifest = { format: shardFormat, ...meta, collections: [] };
    for (const c of collections) {
      mkdirSync(join(temp, c.name));
      const tokensFd = openSync(join(temp, c.name, "tokens.bin"), "w");
      const tokensHash = createHash("sha256");
      const offsets: number[] = [0];
      let tokens = 0;
      // Documents are staged in 1 MiB and written in one call: one syscall per document
      // would cost more than encoding them.
      const staged = new Int32Array(1 << 18);
      let used = 0;
      const flush = () => {
        const bytes = new Uint8Array(staged.buffer, 0, used * 4);
        writeSync(tokensFd, bytes);
        tokensHash.update(bytes);
        used = 0;
      };
      await fill(c, {
        addDocument(ids) {
          if (ids.length === 0) return;
          if (used + ids.length > staged.length) flush();
          if (ids.length > staged.length) {
            const bytes = Buffer.from(Int32Array.from(ids).buffer);
            writeSync(tokensFd, bytes);
            tokensHash.update(bytes);
          } else {
            staged.set(ids, used);
            used += ids.length;
          }
          tokens += ids.length;
          offsets.push(tokens);
        },
      });
      flush();
      fsyncSync(tokensFd);
      closeSync(tokensFd);
      const offsetBytes = Buffer.from(BigInt64Array.from(offsets, BigInt).buffer);
      writeFileSync(join(temp, c.name, "offsets.bin"), offsetBytes, { flush: true });
      manifest.collections.push({
        name: c.name,
        upscale: c.upscale,
        documents: offsets.length - 1,
        tokens,
        tokensSha256: tokensHash.digest("hex"),
        offsetsSha256: createHash("sha256").update(offsetBytes).digest("hex"),
      });
    }
    // Buffers, not strings: Node 20's writeFileSync ignores `flush` (fsync) for string data.
    for (const [name, content] of Object.entries(extraFiles)) writeFileSync(join(temp, name), Buffer.from(content), { flush: true });
    writeFileSync(join(temp, "manifest.json"), Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`), { flush: true });
    rmSync(outDir, { recursive: true, force: true });
    mkdirSync(dirname(outDir), { recursive: true });
    renameSync(temp, outDir);
    return manifest;
  } catch (err) {
    rmSync(temp, { recursive: true, force: true });
    throw err;
  }
}

export interface Collection {
  name: string;
  upscale: number;
  tokens: Int32Array;
  /** documents + 1 entries: document d is tokens[offsets[d], offsets[d+1]) */
  offsets: Float64Array;
}

/** The mmap addon (corpus/native), or undefined where it was not built. */
const mmap = (() => {
  try {
    return createRequire(import.meta.url)(join(packageRoot, "corpus", "native", "build", "Release", "mmap.node")) as { mapFile(path: string): ArrayBuffer };
  } catch {
    return undefined;
  }
})();
let warnedUnmapped = false;

/**
 * A file's bytes: memory-mapped read-only, so the kernel pages them in on demand and the
 * heap never holds the corpus; read whole (with one warning) where the addon is missing.
 */
function mapFile(file: string): Uint8Array {
  if (mmap)
    try {
      return new Uint8Array(mmap.mapFile(file));
    } catch (err) {
      throw new UserError(`${(err as Error).message}: check the file's permissions, or prepare the folder again.`);
    }
  if (!warnedUnmapped)
    process.stderr.write("aze-run: corpus/native is not built (npm run build:native): token shards are read into memory instead of mapped\n");
  warnedUnmapped = true;
  const bytes = readFileSync(file);
  return bytes.byteOffset % 8 === 0 ? bytes : new Uint8Array(bytes); // typed views need alignment
}

/** Whether token shards are memory-mapped in this process. */
export const shardsAreMapped = mmap !== undefined;

/** Opens a shards folder, checking the manifest, file sizes, offsets, token ids and checksums. */
export function openShards(dir: string): { manifest: ShardsManifest; collections: Collection[] } {
  const manifestFile = join(dir, "manifest.json");
  if (!existsSync(manifestFile)) throw new UserError(`${dir} has no manifest.json: prepare it with \`aze-run data prepare\`.`);
  let manifest: ShardsManifest;
  try {
    manifest = JSON.parse(readFileSync(manifestFile, "utf8"));
  } catch {
    throw new UserError(`${manifestFile} is not valid JSON: prepare the folder again.`);
  }
  if (manifest.format !== shardFormat || !Array.isArray(manifest.collections))
    throw new UserError(`${manifestFile} is not an aze-run shards manifest (format ${JSON.stringify(manifest.format)}): prepare the folder again.`);
  const collections = manifest.collections.map((c) => {
    const tokensFile = join(dir, c.name, "tokens.bin");
    const offsetsFile = join(dir, c.name, "offsets.bin");
    for (const f of [tokensFile, offsetsFile]) if (!existsSync(f)) throw new UserError(`${f} is missing: prepare the folder again.`);
    for (const [f, bytes] of [
      [tokensFile, c.tokens * 4],
      [offsetsFile, (c.documents + 1) * 8],
    ] as const)
      if (statSync(f).size !== bytes) throw new UserError(`${f} has ${statSync(f).size} bytes, the manifest says ${bytes}: the file is truncated or damaged.`);
    const tokenBytes = mapFile(tokensFile);
    const offsetBytes = mapFile(offsetsFile);
    if (createHash("sha256").update(tokenBytes).digest("hex") !== c.tokensSha256)
      throw new UserError(`${tokensFile} fails its checksum: the file is corrupted; prepare the folder again.`);
    if (createHash("sha256").update(offsetBytes).digest("hex") !== c.offsetsSha256)
      throw new UserError(`${offsetsFile} fails its checksum: the file is corrupted; prepare the folder again.`);
    const tokens = new Int32Array(tokenBytes.buffer, tokenBytes.byteOffset, c.tokens);
    const offsets = Float64Array.from(new BigInt64Array(offsetBytes.buffer, offsetBytes.byteOffset, c.documents + 1), Number);
    for (let d = 0; d < offsets.length; d++)
      if (offsets[d]! < 0 || offsets[d]! > c.tokens || (d > 0 && offsets[d]! < offsets[d - 1]!))
        throw new UserError(`${offsetsFile}: document offset ${offsets[d]} at ${d} is out of range or out of order.`);
    if (offsets[0] !== 0 || offsets[offsets.length - 1] !== c.tokens) throw new UserError(`${offsetsFile} does not span [0, ${c.tokens}).`);
    for (const id of tokens)
      if (id < 0 || id >= manifest.vocabSize) throw new UserError(`${tokensFile} holds token id ${id}, outside the vocabulary of ${manifest.vocabSize}.`);
    return { name: c.name, upscale: c.upscale, tokens, offsets };
  });
  return { manifest, collections };
}
