// Model architecture: the schema of a model section in a run config, and the presets.
//
// Owns: what a `bert` (aLLMA) or `neobert` (AzNEOBERT) encoder is made of, and what a
// `llama` decoder is made of (a schema and presets of their own, so that run configs and
// the encoder presets stay exactly as they were).
// Never: reads files or knows about the cluster.
import { z } from "zod";
import { ALIGN } from "./layout.js";

export const architectures = ["bert", "neobert"] as const;

export const modelConfigSchema = z
  .object({
    preset: z.string().optional(),
    architecture: z.enum(architectures),
    hidden: z.number().int().positive(),
    layers: z.number().int().positive(),
    heads: z.number().int().positive(),
    /** FFN inner width (for SwiGLU, the width of each of the gate and up halves). */
    intermediate: z.number().int().positive(),
    maxPositions: z.number().int().positive(),
    typeVocabSize: z.number().int().nonnegative(),
    normEps: z.number().positive(),
    dropout: z.number().min(0).max(1),
    attentionDropout: z.number().min(0).max(1),
    gelu: z.enum(["tanh", "erf"]),
    ropeBase: z.number().positive(),
  })
  .strict()
  // What the layout and kernels need of a shape (layout.ts, encoder.ts), checked here so a
  // config that cannot run is refused before anything starts.
  .superRefine((m, ctx) => {
    const issue = (path: string, message: string) => ctx.addIssue({ code: "custom", path: [path], message });
    if (m.hidden % m.heads !== 0)
      issue("hidden", `${m.hidden} is not divisible by model.heads (${m.heads}): pick a hidden size that is a multiple of the heads`);
    else if (m.hidden % ALIGN !== 0) issue("hidden", `${m.hidden} is not a multiple of ${ALIGN} (parameter ranges are ${ALIGN}-aligned)`);
    else if (m.architecture === "neobert" && (m.hidden / m.heads) % 2 !== 0)
      issue("heads", `${m.heads} gives a head size of ${m.hidden / m.heads}, but RoPE rotates pairs of dimensions: pick heads so that hidden / heads is even`);
  });

export type ModelConfig = z.infer<typeof modelConfigSchema>;

const bert = (hidden: number, heads: number, layers: number): ModelConfig => ({
  architecture: "bert",
  hidden,
  layers,
  heads,
  intermediate: 4 * hidden,
  maxPositions: 512,
  typeVocabSize: 2,
  normEps: 1e-12,
  dropout: 0.1,
  attentionDropout: 0.1,
  gelu: "erf",
  ropeBase: 10000,
});

const neobert = (hidden: number, heads: number, layers: number, intermediate: number, maxPositions: number): ModelConfig => ({
  architecture: "neobert",
  hidden,
  layers,
  heads,
  intermediate,
  maxPositions,
  typeVocabSize: 0,
  normEps: 1e-5,
  dropout: 0,
  attentionDropout: 0,
  gelu: "tanh",
  ropeBase: 10000,
});

export const presets: Record<string, ModelConfig> = {
  tiny: { ...bert(64, 4, 2), intermediate: 128, maxPositions: 128, dropout: 0, attentionDropout: 0 },
  "tiny-neobert": neobert(64, 4, 2, 128, 128),
  "allma-small": bert(512, 8, 4),
  "allma-base": bert(768, 12, 12),
  "allma-large": bert(1024, 16, 24),
  // FFN 3072 as published; SwiGLU keeps parameters level with a GELU FFN by taking two
  // thirds of it for each of its halves, as NeoBERT does.
  azneobert: neobert(768, 12, 28, 2048, 4096),
};

// ---- decoders: the Llama family ------------------------------------------------------------

/**
 * Llama 3's frequency scaling of RoPE (Hugging Face `rope_scaling` with `rope_type: llama3`):
 * wavelengths longer than originalMaxPositions / lowFreqFactor are stretched by `factor`,
 * those shorter than originalMaxPositions / highFreqFactor are kept, and the band between
 * is interpolated (model/rope.ts).
 */
export const ropeScalingSchema = z
  .object({
    factor: z.number().positive(),
    lowFreqFactor: z.number().positive(),
    highFreqFactor: z.number().positive(),
    /** Hugging Face `original_max_position_embeddings`. */
    originalMaxPositions: z.number().int().positive(),
  })
  .strict()
  .refine((s) => s.highFreqFactor > s.lowFreqFactor, { message: "highFreqFactor must be above lowFreqFactor (the band between them is interpolated)" });

export type RopeScaling = z.infer<typeof ropeScalingSchema>;

export const decoderConfigSchema = z
  .object({
    preset: z.string().optional(),
    architecture: z.literal("llama"),
    hidden: z.number().int().positive(),
    layers: z.number().int().positive(),
    /** Query heads; the head size is hidden / heads. */
    heads: z.number().int().positive(),
    /** Key and value heads (Hugging Face `num_key_value_heads`): heads / kvHeads query heads share each. */
    kvHeads: z.number().int().positive(),
    /** Width of each of SwiGLU's gate and up projections. */
    intermediate: z.number().int().positive(),
    maxPositions: z.number().int().positive(),
    normEps: z.number().positive(),
    /** Hugging Face `rope_theta`. */
    ropeTheta: z.number().positive(),
    ropeScaling: ropeScalingSchema.optional(),
    /** The LM head reads the embedding table (true) or has its own `lm_head.weight`. */
    tieEmbeddings: z.boolean(),
    /** The vocabulary the preset was published with; a tokenizer of our own sets its own. */
    vocabSize: z.number().int().positive().optional(),
  })
  .strict()
  // What the layout and kernels need of a shape (layout.ts, decoder.ts).
  .superRefine((m, ctx) => {
    const issue = (path: string, message: string) => ctx.addIssue({ code: "custom", path: [path], message });
    if (m.hidden % m.heads !== 0)
      issue("hidden", `${m.hidden} is not divisible by model.heads (${m.heads}): pick a hidden size that is a multiple of the heads`);
    else if (m.hidden % ALIGN !== 0) issue("hidden", `${m.hidden} is not a multiple of ${ALIGN} (parameter ranges are ${ALIGN}-aligned)`);
    else if ((m.hidden / m.heads) % 2 !== 0)
      issue("heads", `${m.heads} gives a head size of ${m.hidden / m.heads}, but RoPE rotates pairs of dimensions: pick heads so that hidden / heads is even`);
    if (m.heads % m.kvHeads !== 0)
      issue("kvHeads", `${m.kvHeads} does not divide model.heads (${m.heads}): each key/value head serves a whole group of query heads`);
  });

export type DecoderConfig = z.infer<typeof decoderConfigSchema>;

const llama = (hidden: number, layers: number, heads: number, kvHeads: number, intermediate: number): DecoderConfig => ({
  architecture: "llama",
  hidden,
  layers,
  heads,
  kvHeads,
  intermediate,
  maxPositions: 2048,
  normEps: 1e-5,
  ropeTheta: 10000,
  tieEmbeddings: true,
});

export const decoderPresets: Record<string, DecoderConfig> = {
  // Small enough for gradient checks; the RoPE scaling on, so tests exercise it.
  "llama-tiny": {
    ...llama(64, 2, 4, 2, 160),
    maxPositions: 128,
    ropeScaling: { factor: 4, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 32 },
  },
  // About 100M parameters at a 64k vocabulary; head size 64, five query heads per key/value head.
  "llama-small": llama(640, 14, 10, 2, 1792),
  // meta-llama/Llama-3.2-1B's config.json.
  "llama-3.2-1b": {
    ...llama(2048, 16, 32, 8, 8192),
    maxPositions: 131072,
    ropeTheta: 500000,
    ropeScaling: { factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 },
    vocabSize: 128256,
  },
};
