// Starting actor processes.
//
// Owns: the command line of an actor process (node and the entry file) and how its
// spec reaches it (the AZE_ACTOR_SPEC environment variable, never argv: it holds a password).
// Never: decides where or how many actors run; that is the coordinator's and agents' job.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, openSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ActorSpec } from "./actor.js";

/** The folder that holds package.json, from the source tree or from dist/. */
export const packageRoot = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) dir = dirname(dir);
  return dir;
})();

/** The compiled entry of actor processes (tests running from sources use the build too). */
export const actorEntry = join(packageRoot, "dist", "runtime", "actor-main.js");
export const cliEntry = join(packageRoot, "dist", "runtime", "cli.js");

/**
 * Spawns one actor process; its stdout and stderr go to `<runDir>/logs/<id>.out`.
 * `detached` starts it in its own process session so it outlives the spawner.
 */
export function spawnActor(spec: ActorSpec, opts: { detached?: boolean } = {}): ChildProcess {
  if (!existsSync(actorEntry)) throw new Error(`${actorEntry} is missing: run \`npm run build\` first.`);
  mkdirSync(join(spec.runDir, "logs"), { recursive: true });
  const out = openSync(join(spec.runDir, "logs", `${spec.id}.out`), "a");
  // The run folder in argv lets `cluster down` find every actor of the run, even one whose agent is gone.
  const child = spawn(process.execPath, [actorEntry, spec.runDir], {
    env: { ...process.env, AZE_ACTOR_SPEC: JSON.stringify(spec) },
    stdio: ["ignore", out, out],
    detached: opts.detached ?? false,
  });
  if (opts.detached) child.unref();
  return child;
}
