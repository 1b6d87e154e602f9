// Model architecture: the schema of a model section in a run config, and the presets.
//
// Owns: what a `bert` (aLLMA) or `neobert` (AzNEOBERT) model is made of.
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
