// CLI commands of the text pipeline: corpus clean, tokenizer train/fertility, data prepare.
import type { Command } from "commander";

export function registerCorpusCommands(_program: Command): void {}
