#!/usr/bin/env node
// The aze-run command line. Each area registers its own commands; this file only
// builds the program and turns a UserError, or a file that cannot be read or written,
// into one line on stderr and a non-zero exit. Anything else is a bug and keeps its stack.
//
// React (under the Ink dashboard) runs its development build unless NODE_ENV says
// otherwise, at nearly twice the cost per frame; it must be set before React loads,
// hence the dynamic imports below.
process.env.NODE_ENV ??= "production";

const { readFileSync } = await import("node:fs");
const { join } = await import("node:path");
const { Command, CommanderError } = await import("commander");
const { registerCorpusCommands } = await import("../corpus/commands.js");
const { registerModelCommands } = await import("../model/commands.js");
const { registerDashboardCommands } = await import("../tui/commands.js");
const { registerClusterCommands } = await import("./commands.js");
const { UserError } = await import("./errors.js");
const { packageRoot } = await import("./spawn.js");

const { version } = JSON.parse(readFileSync(join(packageRoot, "package.json"), "utf8")) as { version: string };

const program = new Command("aze-run")
  .description("Train Azerbaijani language models on one laptop or many GPU nodes.")
  .version(version)
  .showHelpAfterError("(run with --help for usage)")
  .exitOverride();

registerClusterCommands(program);
registerCorpusCommands(program);
registerModelCommands(program);
registerDashboardCommands(program);

/** What to say about a filesystem error, by its code: the path comes first. */
const fileProblems: Record<string, string> = {
  ENOENT: "no such file or folder: check the path, and create an output's folder first",
  EACCES: "permission denied: choose a path you may read or write",
  EPERM: "permission denied: choose a path you may read or write",
  ENOSPC: "no space left on the device: free some space or write elsewhere",
  EISDIR: "is a folder: name a file",
  ENOTDIR: "a part of this path is a file, not a folder: check the path",
};

/** Exits with one line for a mistake the user can fix; a bug (or AZE_DEBUG=1) keeps its stack. */
function die(err: unknown): never {
  if (err instanceof CommanderError) process.exit(err.exitCode);
  const { code, path } = err as NodeJS.ErrnoException;
  const debug = process.env.AZE_DEBUG === "1";
  if (err instanceof UserError && !debug) {
    process.stderr.write(`aze-run: ${err.message}\n`);
    process.exit(err.exitCode);
  }
  if (code && path && fileProblems[code] && !debug) {
    // Outputs are written as `<path>.tmp-<pid>` and renamed: name the path the user gave.
    process.stderr.write(`aze-run: ${path.replace(/\.tmp(-[\d-]+)?$/, "")}: ${fileProblems[code]}. (AZE_DEBUG=1 shows the stack.)\n`);
    process.exit(1);
  }
  process.stderr.write(`${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
}

// Streams report their errors as events, outside the await below.
process.on("uncaughtException", die);
process.on("unhandledRejection", die);
try {
  await program.parseAsync(process.argv);
} catch (err) {
  die(err);
}
