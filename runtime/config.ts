// The run config: one YAML or JSON file per run, validated with a schema.
//
// Owns: what a run is (model, data, training, checkpoints, cluster) and loading it from
// a file with errors that name the key.
// Never: starts anything; every other module receives an already valid RunConfig.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { modelConfigSchema, presets, type ModelConfig } from "../model/config.js";
import { UserError } from "./errors.js";

const sourceSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, "use lowercase letters, digits, - and _"),
    path: z.string(),
    /** How many times this collection is repeated in the mix (DOLLMA-style upscaling). */
    upscale: z.number().positive().default(1),
  })
  .strict();

const dataSchema = z
  .object({
    /** Raw text collections; prepared into token shards under the run cache on first use. */
    sources: z.array(sourceSchema).min(1).optional(),
    /** An existing `data prepare` output folder; used instead of sources when given. */
    shards: z.string().optional(),
    /** An existing tokenizer.json; trained from the sources when omitted. */
    tokenizer: z.string().optional(),
    tokenizerType: z.enum(["wordpiece", "bpe", "bytelevel-bpe"]).default("wordpiece"),
    vocabSize: z.number().int().min(64).default(2000),
    seqLen: z.number().int().min(8).default(64),
    /**
     * How documents become sequences: "none", one document per sequence, padded; "full",
     * documents back to back with [SEP] between them, cut into full sequences (docs/corpus.md).
     * Absent means "none", so configs written before packing keep their hash and their bits;
     * new runs should say "full".
     */
    packing: z.enum(["none", "full"]).optional(),
    /** With packing "full": each token attends only to the tokens of its own document. */
    documentMask: z.boolean().optional(),
  })
  .strict()
  .refine((d) => d.sources || d.shards, { message: "give data.sources (raw text) or data.shards (a prepared folder)" })
  .refine((d) => !d.documentMask || d.packing === "full", {
    message: "documentMask keeps packed documents apart: set data.packing: full too",
    path: ["documentMask"],
  });

const maskingSchema = z
  .object({
    style: z.enum(["bert", "neobert"]).default("bert"),
    /** Share of tokens selected for prediction: 0.15 for BERT, 0.2 for NeoBERT. */
    rate: z.number().gt(0).lt(1).default(0.15),
    wholeWord: z.boolean().default(false),
  })
  .strict();

const trainingSchema = z
  .object({
    seed: z.number().int().nonnegative().default(1),
    steps: z.number().int().positive().default(300),
    /** G: gradient groups per step. A power of two, at least the most compute actors you expect. */
    groups: z
      .number()
      .int()
      .positive()
      .refine((g) => (g & (g - 1)) === 0, "must be a power of two")
      .default(4),
    /** Sequences in one gradient group; the global batch is groups * groupSize. */
    groupSize: z.number().int().positive().default(4),
    /** Sequences in one micro-batch; must divide groupSize. */
    microBatch: z.number().int().positive().default(4),
    lr: z.number().positive().default(1e-3),
    schedule: z.enum(["cosine", "linear", "constant"]).default("cosine"),
    warmupSteps: z.number().int().nonnegative().default(30),
    /** The learning rate at the end of the schedule, as a share of lr. */
    minLrRatio: z.number().min(0).max(1).default(0),
    beta1: z.number().min(0).lt(1).default(0.9),
    beta2: z.number().min(0).lt(1).default(0.98),
    eps: z.number().positive().default(1e-6),
    /** Applied to matrices only, never to biases and norm weights. */
    weightDecay: z.number().min(0).default(0.01),
    /** Global gradient-norm clipping; 0 turns it off. */
    clipNorm: z.number().min(0).default(1),
    masking: maskingSchema.default({ style: "bert", rate: 0.15, wholeWord: false }),
    /** What to do with a gradient that holds NaN or Inf. */
    onNonFinite: z.enum(["skip", "stop"]).default("skip"),
  })
  .strict()
  .refine((t) => t.groupSize % t.microBatch === 0, { message: "microBatch must divide groupSize", path: ["microBatch"] });
/** Every training setting at its default: what fine-tuning uses for AdamW and clipping. */
export const trainingDefaults = trainingSchema.parse({});

const checkpointSchema = z
  .object({
    /** Write a checkpoint every N steps (0: only at the end and on `cluster down`). */
    every: z.number().int().nonnegative().default(0),
    keep: z.number().int().positive().default(3),
  })
  .strict();

const clusterSchema = z
  .object({
    compute: z.number().int().nonnegative().default(1),
    shards: z.number().int().positive().default(1),
    loaders: z.number().int().positive().default(1),
    /** `sim`: compute actors wait and send a made-up gradient instead of computing (model/sim-model.ts). */
    backend: z.enum(["auto", "wasm", "cuda", "sim"]).default("auto"),
    /**
     * `backend: sim` only: how long a simulated group takes, in ms (50 when left out). Left
     * out rather than defaulted so every other config keeps its hash.
     */
    simDelayMs: z.number().int().nonnegative().optional(),
    /** Milliseconds without a heartbeat after which an actor counts as dead. */
    heartbeatTimeoutMs: z.number().int().positive().default(3000),
    /**
     * How many compute actors compute each gradient group: 1, or 2 to accept a gradient
     * block only when two actors' copies agree bit for bit (docs/training.md, "verify: 2").
     */
    verify: z.union([z.literal(1), z.literal(2)]).default(1),
    /**
     * Host-level combining of gradients: the compute actors of one host add their blocks
     * together there and one of them sends the sums on, so the bytes entering the shards grow
     * with hosts, not actors. `auto`: when a step's actors span several hosts; `host`: always
     * (also on one host); `none`: never. Same bits either way (docs/training.md).
     */
    combine: z.enum(["auto", "host", "none"]).default("auto"),
  })
  .strict();

/** A model section: a preset name, optionally with fields overridden. */
const modelSectionSchema = z
  .object({ preset: z.string() })
  .catchall(z.unknown())
  .transform((m, ctx): ModelConfig => {
    const base = presets[m.preset];
    if (!base) {
      ctx.addIssue({ code: "custom", path: ["preset"], message: `unknown preset "${m.preset}"; use one of ${Object.keys(presets).join(", ")}` });
      return z.NEVER;
    }
    const merged = modelConfigSchema.safeParse({ ...base, ...m });
    if (!merged.success) {
      for (const issue of merged.error.issues) ctx.addIssue({ ...issue, code: "custom", message: issue.message } as never);
      return z.NEVER;
    }
    return merged.data;
  });

const runConfigSchema = z
  .object({
    name: z.string().default("run"),
    model: modelSectionSchema,
    data: dataSchema,
    training: trainingSchema.default({} as never),
    checkpoint: checkpointSchema.default({} as never),
    cluster: clusterSchema.default({} as never),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.data.seqLen > c.model.maxPositions)
      ctx.addIssue({
        code: "custom",
        path: ["data", "seqLen"],
        message: `${c.data.seqLen} is longer than model.maxPositions (${c.model.maxPositions}), the longest sequence the model has positions for: lower data.seqLen or raise model.maxPositions`,
      });
  });

export type RunConfig = z.infer<typeof runConfigSchema>;
export type TrainingConfig = RunConfig["training"];
export type DataConfig = RunConfig["data"];

/** Validates a parsed config object; `where` names its origin in errors. */
export function parseRunConfig(raw: unknown, where = "config"): RunConfig {
  const result = runConfigSchema.safeParse(raw ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const key = issue.path.length ? issue.path.join(".") : "(top level)";
  let message = issue.message;
  if (issue.code === "unrecognized_keys") message = `unknown key ${issue.keys.map((k) => `"${k}"`).join(", ")}`;
  throw new UserError(`${where}: ${key}: ${message}. Fix that key and run again.`);
}

/**
 * Reads a YAML or JSON config file. Relative paths inside it (data sources, shards,
 * tokenizer) are resolved against the file's folder so a config works from any cwd.
 */
export function loadRunConfig(file: string): RunConfig {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    throw new UserError(`cannot read config file ${file}: check the path.`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text); // YAML is a superset of JSON
  } catch (err) {
    throw new UserError(`${file} is not valid YAML or JSON: ${(err as Error).message.split("\n")[0]}`);
  }
  const config = parseRunConfig(raw, file);
  const base = dirname(resolve(file));
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  if (config.data.sources) config.data.sources = config.data.sources.map((s) => ({ ...s, path: abs(s.path) }));
  if (config.data.shards) config.data.shards = abs(config.data.shards);
  if (config.data.tokenizer) config.data.tokenizer = abs(config.data.tokenizer);
  return config;
}

/** Where run folders live: $AZE_RUNS, else ./runs. */
export { runsRootDefault } from "./run-state.js";

/**
 * A stable hash of the config: recorded in checkpoints so a resume can check it.
 * `cluster.verify` and `cluster.combine` are left out: they change who computes or adds a
 * gradient, never its bits, so a run may resume with them changed (and older checkpoints
 * keep their hash).
 */
export function configHash(config: RunConfig): string {
  const { verify: _verify, combine: _combine, ...cluster } = config.cluster;
  return createHash("sha256")
    .update(stableJson({ ...config, cluster }))
    .digest("hex")
    .slice(0, 16);
}

function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    entries.sort(([a], [b]) => (a < b ? -1 : 1));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}
