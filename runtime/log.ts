// Structured logs: one JSON line per event, one file per actor, in the run folder.
//
// Owns: the log line format { time, actor, level, event, ...fields }.
// Never: throws because a log could not be written (a full disk must not kill training).
import { appendFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";

export type LogLevel = "debug" | "info" | "warn" | "error";

export interface Logger {
  log(level: LogLevel, event: string, fields?: Record<string, unknown>): void;
  info(event: string, fields?: Record<string, unknown>): void;
  warn(event: string, fields?: Record<string, unknown>): void;
  error(event: string, fields?: Record<string, unknown>): void;
}

export function createLogger(runDir: string, actor: string, echo = false): Logger {
  const dir = join(runDir, "logs");
  const file = join(dir, `${actor}.jsonl`);
  try {
    mkdirSync(dir, { recursive: true });
  } catch {
    /* reported on the first failed write */
  }
  const log = (level: LogLevel, event: string, fields: Record<string, unknown> = {}) => {
    const line = JSON.stringify({ time: new Date().toISOString(), actor, level, event, ...fields });
    try {
      appendFileSync(file, `${line}\n`);
    } catch {
      /* see module comment */
    }
    if (echo || level === "error") process.stderr.write(`${line}\n`);
  };
  return {
    log,
    info: (e, f) => log("info", e, f),
    warn: (e, f) => log("warn", e, f),
    error: (e, f) => log("error", e, f),
  };
}
