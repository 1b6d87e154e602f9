// Corpus cleaning: Unicode NFC, a script filter for Azerbaijani Latin, exact and near
// deduplication, and length filters, line by line, with a report of what was dropped and why.
//
// Owns: the rules a line must pass to enter a corpus. Never: holds the corpus in memory:
// exact duplicates are remembered by a 64-bit hash, near duplicates by MinHash band keys.
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream, renameSync } from "node:fs";
import { createInterface } from "node:readline";
import { once } from "node:events";
import { counterHash } from "../model/counter-hash.js";
import { assertTextFile } from "./text-check.js";

export type Script = "latin" | "cyrillic" | "arabic" | "armenian" | "georgian" | "other";

/** The script of one letter. Azerbaijani Latin is Latin with ç ə ğ ı ö ş ü. */
export function scriptOf(ch: string): Script | undefined {
  if (!/\p{L}/u.test(ch)) return undefined;
  if (/\p{Script=Latin}/u.test(ch)) return "latin";
  if (/\p{Script=Cyrillic}/u.test(ch)) return "cyrillic";
  if (/\p{Script=Arabic}/u.test(ch)) return "arabic";
  if (/\p{Script=Armenian}/u.test(ch)) return "armenian";
  if (/\p{Script=Georgian}/u.test(ch)) return "georgian";
  return "other";
}

/** The script most of a line's letters are written in (undefined: no letters). */
export function dominantScript(line: string): Script | undefined {
  const counts = new Map<Script, number>();
  for (const ch of line) {
    const s = scriptOf(ch);
    if (s) counts.set(s, (counts.get(s) ?? 0) + 1);
  }
  let best: Script | undefined;
  for (const [s, n] of counts) if (!best || n > counts.get(best)!) best = s;
  return best;
}

export interface CleanOptions {
  minChars: number;
  maxChars: number;
  /** Jaccard similarity of character 5-gram sets above which a line counts as a near duplicate. */
  nearDuplicateThreshold: number;
}

export interface CleanReport {
  linesIn: number;
  linesOut: number;
  dropped: Record<string, number>;
}

const PERMUTATIONS = 64;

/** MinHash signature over character 5-grams: PERMUTATIONS minima of seeded hashes. */
export function minhash(line: string): Uint32Array {
  const sig = new Uint32Array(PERMUTATIONS).fill(0xffffffff);
  const text = line.toLowerCase();
  for (let i = 0; i + 5 <= text.length; i++) {
    let h = 0;
    for (let j = i; j < i + 5; j++) h = Math.imul(h ^ text.charCodeAt(j), 0x01000193) >>> 0;
    for (let p = 0; p < PERMUTATIONS; p++) {
      const v = counterHash(p + 1, h);
      if (v < sig[p]!) sig[p] = v;
    }
  }
  return sig;
}

/**
 * Bands for locality-sensitive hashing: with `rows` per band, two lines of similarity s
 * share a band with probability 1 - (1 - s^rows)^bands. Rows are chosen so the threshold
 * sits near the steep part of that curve.
 */
function bandKeys(sig: Uint32Array, threshold: number): string[] {
  const rows = threshold >= 0.9 ? 8 : threshold >= 0.7 ? 4 : 2;
  const keys: string[] = [];
  for (let b = 0; b * rows < sig.length; b++) keys.push(`${b}:${Array.from(sig.subarray(b * rows, (b + 1) * rows)).join(",")}`);
  return keys;
}

const similarity = (a: Uint32Array, b: Uint32Array) => a.reduce((n, v, i) => n + (v === b[i] ? 1 : 0), 0) / a.length;

export async function cleanCorpus(inputs: string[], output: string, opts: CleanOptions): Promise<CleanReport> {
  for (const file of inputs) assertTextFile(file);
  const report: CleanReport = { linesIn: 0, linesOut: 0, dropped: {} };
  const seen = new Set<string>();
  const bands = new Map<string, Uint32Array>();
  /** Why a line is dropped, or undefined to keep it (and remember it for deduplication). */
  const dropReason = (line: string): string | undefined => {
    if (!line) return "empty";
    const script = dominantScript(line);
    if (script !== "latin") return script ? `script: ${script}` : "no letters";
    if (line.length < opts.minChars) return "too short";
    if (line.length > opts.maxChars) return "too long";
    const key = createHash("sha256").update(line).digest("base64").slice(0, 11);
    if (seen.has(key)) return "exact duplicate";
    seen.add(key);
    const sig = minhash(line);
    const keys = bandKeys(sig, opts.nearDuplicateThreshold);
    if (keys.some((k) => bands.has(k) && similarity(bands.get(k)!, sig) >= opts.nearDuplicateThreshold)) return "near duplicate";
    for (const k of keys) if (!bands.has(k)) bands.set(k, sig);
    return undefined;
  };
  const temp = `${output}.tmp-${process.pid}`;
  const out = createWriteStream(temp);
  for (const file of inputs) {
    for await (const raw of createInterface({ input: createReadStream(file, { encoding: "utf8" }), crlfDelay: Infinity })) {
      report.linesIn++;
      const line = raw.normalize("NFC").trim();
      const why = dropReason(line);
      if (why) report.dropped[why] = (report.dropped[why] ?? 0) + 1;
      else {
        report.linesOut++;
        if (!out.write(`${line}\n`)) await once(out, "drain");
      }
    }
  }
  out.end();
  await once(out, "finish");
  renameSync(temp, output);
  return report;
}
