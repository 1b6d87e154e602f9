// Structured logs: one JSON line per event, one file per actor, in the run folder.
//
// Owns: the log line format { time, actor, level, event, ...fields }.
// Never: throws because a log could not be written (a full disk must not kill training).
import { appendFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";

export type Logger = ReturnType<typeof createLogger>;

export function createLogger(runDir: string, actor: string) {
  const dir = join(runDir, "logs");
  const file = join(dir, `${actor}.jsonl`);
  try {
    mkdirSync(dir, { recursive: true });
  } catch {
    /* reported on the first failed write */
  }
  const log =
    (level: "info" | "warn" | "error") =>
    (event: string, fields: Record<string, unknown> = {}): void => {
      const line = JSON.stringify({ time: new Date().toISOString(), actor, level, event, ...fields });
      try {
        appendFileSync(file, `${line}\n`);
      } catch {
        /* see module comment */
      }
      if (level === "error") process.stderr.write(`${line}\n`);
    };
  return { info: log("info"), warn: log("warn"), error: log("error") };
}
