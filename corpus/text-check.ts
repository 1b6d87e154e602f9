// The check every text input passes before any heavy work: it is UTF-8, and holds no
// control characters but tab, newline and carriage return.
//
// Owns: what counts as text. Never: holds a file in memory; it reads 1 MiB at a time, so
// a binary file is refused after reading up to its first bad byte.
import { closeSync, openSync, readSync } from "node:fs";
import { UserError } from "../runtime/errors.js";

/**
 * Scans `b` as UTF-8 text: `bad` is the offset of the first byte that is not (an invalid
 * sequence's first byte, or a control character), or -1; `end` is where whole characters
 * end, short of `b.length` when the last one continues past `b` (unless `final`).
 */
export function scanText(b: Uint8Array, final: boolean): { bad: number; end: number } {
  let i = 0;
  while (i < b.length) {
    const c = b[i]!;
    if (c < 0x80) {
      if ((c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) || c === 0x7f) return { bad: i, end: i };
      i++;
      continue;
    }
    // Well-formed sequences (Unicode table 3-7): no overlong forms, surrogates or values past U+10FFFF.
    const more = c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : 0;
    if (more === 0) return { bad: i, end: i };
    if (i + more >= b.length && !final) return { bad: -1, end: i };
    const lo = c === 0xe0 ? 0xa0 : c === 0xf0 ? 0x90 : 0x80;
    const hi = c === 0xed ? 0x9f : c === 0xf4 ? 0x8f : 0xbf;
    for (let k = 1; k <= more; k++) {
      const d = b[i + k];
      if (d === undefined || d < (k === 1 ? lo : 0x80) || d > (k === 1 ? hi : 0xbf)) return { bad: i, end: i };
    }
    i += more + 1;
  }
  return { bad: -1, end: i };
}

/** Throws a UserError naming `file` and the offset of its first byte that is not text. */
export function assertTextFile(file: string): void {
  const fd = openSync(file, "r");
  try {
    const chunk = Buffer.alloc(1 << 20);
    for (let at = 0; ; ) {
      const n = readSync(fd, chunk, 0, chunk.length, at);
      const { bad, end } = scanText(chunk.subarray(0, n), n < chunk.length);
      if (bad >= 0)
        throw new UserError(
          `${file}: not UTF-8 text: byte ${at + bad} (0x${chunk[bad]!.toString(16).padStart(2, "0")}) ${chunk[bad]! < 0x80 ? "is a control character" : "is not valid UTF-8"}: give plain text, one document per line (convert other encodings with iconv).`,
        );
      if (n < chunk.length) return;
      at += end;
    }
  } finally {
    closeSync(fd);
  }
}
