// Test fixtures shared by the integration suites: real nats-servers, real run folders,
// the real CLI as a child process, and process inspection for "nothing left behind".
import { execFile, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { Credentials } from "../../runtime/nats-server.js";
import type { NatsConnection } from "../../runtime/nats.js";
import { cliEntry } from "../../runtime/spawn.js";
import type { Role } from "../../runtime/subjects.js";

const execFileAsync = promisify(execFile);

/** A fresh folder for runs/ (and anything else a test writes), removed by `cleanup`. */
export function tempDir(prefix = "aze-test-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `aze-run ...args` (the built CLI) in `cwd` as a real child process; `env` adds to this process's environment. */
export async function runCli(args: string[], cwd: string, timeoutMs = 60_000, env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  if (!existsSync(cliEntry)) throw new Error(`${cliEntry} is missing: run \`npm run build\` before the tests.`);
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [cliEntry, ...args], { cwd, timeout: timeoutMs, env: { ...process.env, ...env } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === "number" ? e.code : 1, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
  }
}

/** Pids of processes whose command line contains `pattern` (pgrep -f). */
export function pgrep(pattern: string): number[] {
  const out = spawnSync("pgrep", ["-f", pattern], { encoding: "utf8" });
  return out.stdout
    .split("\n")
    .filter(Boolean)
    .map(Number)
    .filter((pid) => pid !== process.pid);
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value as T;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}${lastError ? `: ${String(lastError)}` : ""}`);
}

/** An identity of `role` named `name`, minted with a run's own issuer key, as its coordinator would. */
export async function mintFor(state: { run: string; natsUrl: string; credsDir?: string }, role: Role, name: string): Promise<Credentials> {
  const { mintIdentity, readIssuer } = await import("../../runtime/identity.js");
  const issuer = readIssuer(join(state.credsDir!, "issuer.json"));
  return { run: state.run, role, url: state.natsUrl, ...(await mintIdentity(issuer, role, name)) };
}

/**
 * A real nats-server trusting a new run authority, in a temp folder. `credsOf(role, name)`
 * mints an identity of that role (named `name`, by default the role) as the run would.
 */
export async function startTestServer(run = "t", port?: number) {
  const { startNatsServer, maxPayloadBytes } = await import("../../runtime/nats-server.js");
  const { createAuthority, mintIdentity } = await import("../../runtime/identity.js");
  const dir = tempDir("aze-nats-");
  const authority = await createAuthority(run, maxPayloadBytes);
  const server = await startNatsServer({ dir, run, trust: authority.serverConfig, port });
  const credsOf = async (role: Role, name: string = role) => ({ run, role, url: server.url, ...(await mintIdentity(authority.issuer, role, name)) });
  const stop = (signal: NodeJS.Signals = "SIGTERM") => {
    try {
      process.kill(server.pid, signal);
    } catch {
      /* already gone */
    }
  };
  const restart = async () => {
    const again = await startNatsServer({ dir, run, trust: authority.serverConfig, port: server.port });
    server.pid = again.pid;
  };
  return {
    ...server,
    dir,
    run,
    credsOf,
    stop,
    restart,
    cleanup: () => {
      stop("SIGKILL");
      removeDir(dir);
    },
  };
}

/** The permission errors the server sends `nc` from now on, as text (the server refuses without closing). */
export function violations(nc: NatsConnection): string[] {
  const errors: string[] = [];
  void (async () => {
    for await (const st of nc.status()) if (st.type === "error") errors.push(String((st as { error?: unknown }).error));
  })();
  return errors;
}
