// bench:cli — wall time of the command line starting up: `aze-run --help`, `cluster status`
// (against an `--empty` run this bench starts and stops in a temporary folder) and
// `model info --preset tiny`, 10 runs each as separate processes; median and minimum, and
// the machine's load average (os.loadavg) at the time, since a busy machine slows them all.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { cliEntry } from "../runtime/spawn.js";

const runs = 10;
const dir = mkdtempSync(join(tmpdir(), "aze-bench-cli-"));

/** Milliseconds of wall time of one `aze-run ...args`; a failing command ends the bench. */
function wallMs(args: string[]): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [cliEntry, ...args], { cwd: dir, encoding: "utf8" });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`aze-run ${args.join(" ")} exited with status ${r.status}: ${r.stderr.trim()}`);
  return ms;
}

const commands: [string, string[]][] = [
  ["--help", ["--help"]],
  ["cluster status", ["cluster", "status", "--run", "bench"]],
  ["model info --preset tiny", ["model", "info", "--preset", "tiny"]],
];

const rows: string[] = [];
const loads: number[] = [];
try {
  execFileSync(process.execPath, [cliEntry, "cluster", "up", "--empty", "--detach", "--run", "bench"], { cwd: dir, stdio: "ignore" });
  for (const [name, args] of commands) {
    wallMs(args); // a first run warms the disk cache
    const times = Array.from({ length: runs }, () => wallMs(args)).sort((a, b) => a - b);
    loads.push(loadavg()[0]!);
    const median = (times[(runs - 1) >> 1]! + times[runs >> 1]!) / 2;
    rows.push(`${name.padEnd(26)} ${median.toFixed(0).padStart(9)} ${times[0]!.toFixed(0).padStart(9)}`);
  }
} finally {
  spawnSync(process.execPath, [cliEntry, "cluster", "down", "--run", "bench"], { cwd: dir, stdio: "ignore" });
  rmSync(dir, { recursive: true, force: true });
}

const [one, five, fifteen] = loadavg();
process.stdout.write(
  `${"command".padEnd(26)} ${"median ms".padStart(9)} ${"min ms".padStart(9)}   (${runs} runs each)\n${rows.join("\n")}\n` +
    `load average: ${one!.toFixed(2)}, ${five!.toFixed(2)}, ${fifteen!.toFixed(2)} (1, 5, 15 min) on ${cpus().length} cores; ` +
    `1-min load after each command: ${loads.map((l) => l.toFixed(2)).join(", ")}\n`,
);
