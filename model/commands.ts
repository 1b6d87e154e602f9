// CLI commands of the model: `model info`, `train --local`, `checkpoint verify`, `eval`,
// `export`, `import`, `finetune` and `benchmark`.
// Each action loads the model code it uses when it runs, so that help loads only commander.
import { InvalidArgumentError, type Command } from "commander";
import { UserError } from "../runtime/errors.js";
import type { Packing } from "../corpus/dataset.js";
import type { DevScores } from "./finetune.js";
import { tasks, type OnBadRow, type Task } from "./tasks.js";
import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";

const whole = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive whole number, got "${v}".`);
  return n;
};

const positive = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive number, got "${v}".`);
  return n;
};

const pct = (x: number) => (100 * x).toFixed(1);

/** The dev scores a task has, in words. */
function describeScores(s: DevScores): string {
  if (s.exactMatch !== undefined) return `exact match ${pct(s.exactMatch)}%, F1 ${pct(s.f1!)}%`;
  const classes = `accuracy ${pct(s.accuracy!)}%, macro F1 ${pct(s.macroF1!)}%`;
  if (!s.entities) return classes;
  const e = s.entities;
  return `word ${classes}; entities precision ${pct(e.precision)}%, recall ${pct(e.recall)}%, F1 ${pct(e.f1)}%`;
}

export function registerModelCommands(program: Command): void {
  // The presets live beside their zod schemas: they fill in `model info --preset`'s help once
  // a `model` command is asked for, not every time the command line is parsed.
  program.hook("preSubcommand", async (_program, sub) => {
    const preset = sub.name() === "model" && sub.commands.find((c) => c.name() === "info")?.options.find((o) => o.long === "--preset");
    if (!preset) return;
    const { decoderPresets, presets } = await import("./config.js");
    preset.description = `one of ${[...Object.keys(presets), ...Object.keys(decoderPresets)].join(", ")}`;
  });
  program
    .command("model")
    .description("inspect model presets")
    .command("info")
    .description("parameter count and shape of a preset")
    .requiredOption("--preset <name>", "one of the presets")
    .option("--vocab <n>", "vocabulary size (default: the preset's own, else 64000)", whole("--vocab"))
    .action(async (opts: { preset: string; vocab?: number }) => {
      const { decoderPresets, presets } = await import("./config.js");
      const { decoderParameterLayout, entry, parameterCount, parameterLayout } = await import("./layout.js");
      const presetNames = [...Object.keys(presets), ...Object.keys(decoderPresets)].join(", ");
      const decoder = decoderPresets[opts.preset];
      if (decoder) {
        const vocab = opts.vocab ?? decoder.vocabSize ?? 64000;
        const layout = decoderParameterLayout(decoder, vocab);
        const n = parameterCount(layout);
        const embeddings = entry(layout, "model.embed_tokens.weight").size;
        const scaling = decoder.ropeScaling
          ? `, scaled ×${decoder.ropeScaling.factor} (low ${decoder.ropeScaling.lowFreqFactor}, high ${decoder.ropeScaling.highFreqFactor}, original ${decoder.ropeScaling.originalMaxPositions})`
          : "";
        process.stdout.write(
          `${opts.preset}: ${decoder.architecture}, hidden ${decoder.hidden}, ${decoder.layers} layers, ${decoder.heads} heads, ${decoder.kvHeads} key/value heads, ` +
            `FFN ${decoder.intermediate} (SwiGLU), vocabulary ${vocab}, RoPE θ ${decoder.ropeTheta}${scaling}\n` +
            `parameters: ${n.toLocaleString("en-US")} (${(n / 1e6).toFixed(1)}M; embeddings ${(embeddings / 1e6).toFixed(1)}M, ` +
            `${decoder.tieEmbeddings ? "the LM head tied to them" : "an LM head of its own"})\n`,
        );
        return;
      }
      const config = presets[opts.preset];
      if (!config) throw new UserError(`unknown preset "${opts.preset}": use one of ${presetNames}.`);
      const vocab = opts.vocab ?? 64000;
      const layout = parameterLayout(config, vocab);
      const n = parameterCount(layout);
      const embeddings = layout.entries.filter((e) => /embeddings|^encoder\.weight/.test(e.name)).reduce((s, e) => s + e.size, 0);
      process.stdout.write(
        `${opts.preset}: ${config.architecture}, hidden ${config.hidden}, ${config.layers} layers, ${config.heads} heads, FFN ${config.intermediate}, vocabulary ${vocab}\n` +
          `parameters: ${n.toLocaleString("en-US")} (${(n / 1e6).toFixed(1)}M; embeddings ${(embeddings / 1e6).toFixed(1)}M, the MLM decoder tied to them)\n`,
      );
    });

  program
    .command("train")
    .description("train in one process (--local): the reference a cluster run must equal bit for bit")
    .requiredOption("--local", "train in this process")
    .requiredOption("--config <file>", "run config (YAML or JSON)")
    .option("--run <name>", "run folder name under $AZE_RUNS or runs/ (default: <config name>-local)")
    .option("--steps <n>", "stop after this many steps", whole("--steps"))
    .option("--resume <checkpoint>", "continue from a checkpoint folder")
    .option("--fresh", "delete the run folder's checkpoints and metrics first")
    .option("--backend <name>", "wasm (default from the config) or reference")
    .action(async (opts: { config: string; run?: string; steps?: number; resume?: string; fresh?: boolean; backend?: string }) => {
      const { trainLocal } = await import("./train-local.js");
      const t0 = Date.now();
      const result = await trainLocal({
        ...opts,
        onStep: (m, steps) => {
          if (m.step === 1 || m.step % 10 === 0 || m.step === steps)
            process.stdout.write(
              `step ${m.step}/${steps} loss ${m.loss.toFixed(4)} lr ${m.lr.toExponential(2)} grad-norm ${m.gradNorm.toFixed(3)} ${Math.round(m.tokensPerSec)} tok/s` +
                ` ${(100 * (m.realTokenShare ?? 0)).toFixed(1)}% real tokens\n`,
            );
        },
      });
      const first = result.losses[0] ?? NaN;
      const last = result.losses.at(-1) ?? NaN;
      process.stdout.write(
        `done in ${((Date.now() - t0) / 1000).toFixed(1)} s: loss ${first.toFixed(3)} → ${last.toFixed(3)}; checkpoint ${result.checkpoint ?? "none"}\n`,
      );
    });

  program
    .command("checkpoint")
    .description("inspect checkpoints")
    .command("verify")
    .description("check a checkpoint whole: manifest, coverage of the parameter vector, every file's checksum and shapes")
    .argument("<dir>", "checkpoint folder")
    .action(async (dir: string) => {
      const { verifyCheckpoint } = await import("./checkpoint.js");
      const r = verifyCheckpoint(dir);
      process.stdout.write(
        `${dir}: step ${r.step}, ${r.total.toLocaleString("en-US")} parameters in ${r.files} slice file${r.files === 1 ? "" : "s"}, every checksum matches\n`,
      );
    });

  program
    .command("eval")
    .description("MLM loss, pseudo-perplexity, bits per byte and fertility of a checkpoint on held-out text")
    .requiredOption("--checkpoint <dir>", "checkpoint folder")
    .requiredOption("--data <file|dir>", "held-out text (a file, or a folder of .txt files)")
    .option("--max-sequences <n>", "sequences to score", whole("--max-sequences"), 200)
    .option("--packing <how>", "full: lines back to back with [SEP] between them, as data.packing: full; none: one line a sequence", "full")
    .option("--batch <n>", "sequences per forward pass (default: 2048 tokens' worth)", whole("--batch"))
    .option("--json", "machine-readable output")
    .action(async (opts: { checkpoint: string; data: string; maxSequences: number; packing: string; batch?: number; json?: boolean }) => {
      const { packings } = await import("../corpus/dataset.js");
      const { evaluate } = await import("./evaluate.js");
      if (!packings.includes(opts.packing as Packing)) throw new UserError(`--packing ${opts.packing}: use one of ${packings.join(", ")}.`);
      const r = await evaluate(opts.checkpoint, opts.data, { maxSequences: opts.maxSequences, packing: opts.packing as Packing, batch: opts.batch });
      if (opts.json) return void process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      process.stdout.write(
        `step ${r.step}, ${r.sequences} sequences: MLM loss ${r.mlmLoss.toFixed(4)} (${r.maskedTokens} masked), pseudo-perplexity ${r.pseudoPerplexity.toFixed(2)}, ` +
          `${r.bitsPerByte.toFixed(3)} bits/byte, ${r.tokensPerWord.toFixed(3)} tokens/word, [UNK] ${(r.unknownShare * 100).toFixed(2)}%\n`,
      );
    });

  program
    .command("export")
    .description("write a Hugging Face folder: config.json, model.safetensors, tokenizer files")
    .requiredOption("--checkpoint <dir>", "checkpoint folder")
    .requiredOption("--out <dir>", "output folder")
    .action(async (opts: { checkpoint: string; out: string }) => {
      const { exportCheckpoint } = await import("./hub.js");
      process.stdout.write(`wrote ${exportCheckpoint(opts.checkpoint, opts.out)}\n`);
    });

  program
    .command("import")
    .description("turn a Hugging Face folder (as export writes it, or a BERT/NeoBERT one from elsewhere) into a checkpoint to train or evaluate from")
    .requiredOption("--hf <dir>", "Hugging Face model folder")
    .option("--run <name>", "run folder under runs/ to hold the checkpoint", "imported")
    .option("--seq-len <n>", "sequence length to record (needed where config.json has no aze_run.seq_len)", whole("--seq-len"))
    .action(async (opts: { hf: string; run: string; seqLen?: number }) => {
      const { importHub } = await import("./hub.js");
      const path = importHub(opts.hf, resolve(join("runs", opts.run)), opts.seqLen);
      process.stdout.write(`wrote ${path}: resume from it with --resume\n`);
    });

  program
    .command("finetune")
    .description("fine-tune a checkpoint on a labelled task; dev scores after every epoch (accuracy and macro F1, entity F1, or exact match and F1)")
    .requiredOption("--checkpoint <dir>", "checkpoint folder, or a Hugging Face folder written by export")
    .requiredOption("--task <task>", tasks.join(" | "))
    .requiredOption("--train <file>", "training rows (JSONL: text/text_pair/label, tokens/tags, or context/question/answers)")
    .requiredOption("--dev <file>", "dev rows, same format")
    .option("--out <dir>", "where the fine-tuned Hugging Face folder goes (default: runs/finetune-<task>)")
    .option("--epochs <n>", "passes over the training rows", whole("--epochs"), 3)
    .option("--batch-size <n>", "rows per step", whole("--batch-size"), 16)
    .option("--lr <x>", "peak learning rate (linear warmup over 10% of the steps, then linear decay)", positive("--lr"), 1e-4)
    .option("--seed <n>", "seed of the head's initialisation, the row order and dropout", whole("--seed"), 1)
    .option(
      "--max-length <n>",
      "longest window in tokens (default: the pre-training length); longer rows of token tasks and contexts are split",
      whole("--max-length"),
    )
    .option("--stride <n>", "tokens consecutive windows of a long row share (default: a quarter of --max-length)", whole("--stride"))
    .option("--max-answer-length <n>", "question answering: the longest answer in tokens", whole("--max-answer-length"), 30)
    .option("--on-bad-row <what>", "skip (report each bad row and leave it out) or fail", "skip")
    .option("--backend <name>", "wasm or reference", "wasm")
    .option("--json", "print the result as JSON")
    .action(
      async (opts: {
        checkpoint: string;
        task: string;
        train: string;
        dev: string;
        out?: string;
        epochs: number;
        batchSize: number;
        lr: number;
        seed: number;
        maxLength?: number;
        stride?: number;
        maxAnswerLength: number;
        onBadRow: string;
        backend: string;
        json?: boolean;
      }) => {
        const { finetune } = await import("./finetune.js");
        if (!tasks.includes(opts.task as Task)) throw new UserError(`--task ${opts.task}: use one of ${tasks.join(", ")}.`);
        if (opts.onBadRow !== "skip" && opts.onBadRow !== "fail") throw new UserError(`--on-bad-row ${opts.onBadRow}: use skip or fail.`);
        const r = await finetune({
          ...opts,
          task: opts.task as Task,
          onBadRow: opts.onBadRow as OnBadRow,
          out: opts.out ?? resolve(join("runs", `finetune-${opts.task}`)),
          report: (message) => process.stderr.write(`${message}\n`),
          onEpoch: (e) => {
            if (!opts.json)
              process.stdout.write(
                `epoch ${e.epoch}/${opts.epochs}: train loss ${e.trainLoss.toFixed(4)}, dev loss ${e.dev.loss.toFixed(4)}, ${describeScores(e.dev)}\n`,
              );
          },
        });
        if (opts.json) return void process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
        const last = r.epochs.at(-1)!;
        const qa = r.task === "question-answering";
        process.stdout.write(
          `${r.task}: ${r.trainRows} training rows, ${r.devRows} dev rows${qa ? "" : `, labels ${r.labels.join(", ")}`}\n` +
            `${qa ? "first-sentence baseline" : `majority baseline ("${r.baseline.label}")`}: ${describeScores(r.baseline)}; fine-tuned: ${describeScores(last.dev)}\n` +
            `wrote ${r.out}\n`,
        );
      },
    );

  program
    .command("benchmark")
    .description("fine-tune a checkpoint on every task of a task list, with several seeds, beside random weights and a baseline; one table of mean ± spread")
    .requiredOption("--checkpoint <dir>", "checkpoint folder, or a Hugging Face folder written by export")
    .requiredOption("--tasks <file>", "task list (YAML or JSON): name, task, train, dev, epochs, lr per task; e.g. corpus/sample/tasks/benchmark.yaml")
    .option("--seeds <n>", "seeds per task and model (1..n)", whole("--seeds"), 3)
    .option("--out <file>", "also write the results as JSON")
    .option("--backend <name>", "wasm or reference", "wasm")
    .action(async (opts: { checkpoint: string; tasks: string; seeds: number; out?: string; backend: string }) => {
      const { benchmark, benchmarkTable } = await import("./benchmark.js");
      const r = await benchmark({
        checkpoint: opts.checkpoint,
        taskList: opts.tasks,
        seeds: opts.seeds,
        backend: opts.backend,
        report: (message) => process.stderr.write(`${message}\n`),
      });
      if (opts.out) writeFileSync(opts.out, `${JSON.stringify(r, null, 2)}\n`);
      process.stdout.write(`${benchmarkTable(r)}\n${opts.out ? `wrote ${opts.out}\n` : ""}`);
    });
}
