// CLI commands of the model: model info, train --local.
import type { Command } from "commander";

export function registerModelCommands(_program: Command): void {}
