#!/usr/bin/env node
// The aze-run command line. Each area registers its own commands; this file only
// builds the program and turns a UserError into one line on stderr and a non-zero exit.
//
// React (under the Ink dashboard) runs its development build unless NODE_ENV says
// otherwise, at nearly twice the cost per frame; it must be set before React loads,
// hence the dynamic imports below.
process.env.NODE_ENV ??= "production";

const { Command, CommanderError } = await import("commander");
const { registerCorpusCommands } = await import("../corpus/commands.js");
const { registerModelCommands } = await import("../model/commands.js");
const { registerDashboardCommands } = await import("../tui/commands.js");
const { registerClusterCommands } = await import("./commands.js");
const { UserError } = await import("./errors.js");

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
