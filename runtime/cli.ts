#!/usr/bin/env node
// The aze-run command line. Each area registers its own commands; this file only
// builds the program and turns a UserError into one line on stderr and a non-zero exit.
import { Command, CommanderError } from "commander";
import { registerCorpusCommands } from "../corpus/commands.js";
import { registerModelCommands } from "../model/commands.js";
import { registerDashboardCommands } from "../tui/commands.js";
import { registerClusterCommands } from "./commands.js";
import { UserError } from "./errors.js";

const program = new Command("aze-run")
  .description("Train Azerbaijani language models on one laptop or many GPU nodes.")
  .showHelpAfterError("(run with --help for usage)")
  .exitOverride();

registerClusterCommands(program);
registerCorpusCommands(program);
registerModelCommands(program);
registerDashboardCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode);
  if (err instanceof UserError) {
    process.stderr.write(`aze-run: ${err.message}\n`);
    process.exit(err.exitCode);
  }
  throw err;
}
