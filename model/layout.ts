// The flat parameter layout: one contiguous f32 vector with named, aligned ranges.
//
// Owns: the names (Hugging Face style), shapes and offsets of every parameter of a `bert`
// or `neobert` encoder and of a `llama` decoder, which ranges take weight decay, the
// initialisation, and CHUNK: the unit over which the gradient norm is summed and on which
// shard boundaries fall.
// Never: allocates device memory or knows about shards.
import { counterHash } from "./counter-hash.js";
import type { DecoderConfig, ModelConfig } from "./config.js";

/** Elements per chunk of the flat vector: the gradient norm is summed chunk by chunk. */
export const CHUNK = 4096;
/** Every range starts on a multiple of this (64 bytes), for SIMD loads. */
export const ALIGN = 16;

export interface ParamEntry {
  name: string;
  offset: number;
  shape: number[];
  size: number;
  /** AdamW weight decay applies to matrices only, never to biases and norm weights. */
  decay: boolean;
  init: "normal" | "zeros" | "ones";
}

export interface ParamLayout {
  architecture: ModelConfig["architecture"] | DecoderConfig["architecture"];
  vocabSize: number;
  entries: ParamEntry[];
  /** Length of the flat vector: a whole number of chunks. */
  total: number;
}

type AddEntry = (name: string, shape: number[], init: ParamEntry["init"]) => void;

/**
 * `base` with the entries `build` adds appended after its end, each on an ALIGN boundary
 * and taking weight decay when it is a matrix; the total rounds up to whole chunks.
 */
export function extendLayout(base: ParamLayout, build: (add: AddEntry) => void): ParamLayout {
  const entries = [...base.entries];
  let offset = base.total;
  build((name, shape, init) => {
    const size = shape.reduce((a, b) => a * b, 1);
    entries.push({ name, offset, shape, size, decay: shape.length === 2, init });
    offset += Math.ceil(size / ALIGN) * ALIGN;
  });
  return { ...base, entries, total: Math.ceil(offset / CHUNK) * CHUNK };
}

export function parameterLayout(config: ModelConfig, vocabSize: number): ParamLayout {
  return extendLayout({ architecture: config.architecture, vocabSize, entries: [], total: 0 }, (add) => modelEntries(config, vocabSize, add));
}

function modelEntries(config: ModelConfig, vocabSize: number, add: AddEntry): void {
  const { hidden: C, intermediate: I, layers } = config;
  if (C % config.heads !== 0) throw new Error(`hidden ${C} is not a multiple of heads ${config.heads}`);
  if (C % ALIGN !== 0) throw new Error(`hidden ${C} must be a multiple of ${ALIGN}`);
  if (config.architecture === "bert") {
    add("bert.embeddings.word_embeddings.weight", [vocabSize, C], "normal");
    add("bert.embeddings.position_embeddings.weight", [config.maxPositions, C], "normal");
    add("bert.embeddings.token_type_embeddings.weight", [Math.max(1, config.typeVocabSize), C], "normal");
    add("bert.embeddings.LayerNorm.weight", [C], "ones");
    add("bert.embeddings.LayerNorm.bias", [C], "zeros");
    for (let l = 0; l < layers; l++) {
      const p = `bert.encoder.layer.${l}`;
      // query, key and value weights (and biases) stand back to back: one (3C, C) matmul.
      for (const w of ["query", "key", "value"]) add(`${p}.attention.self.${w}.weight`, [C, C], "normal");
      for (const w of ["query", "key", "value"]) add(`${p}.attention.self.${w}.bias`, [C], "zeros");
      add(`${p}.attention.output.dense.weight`, [C, C], "normal");
      add(`${p}.attention.output.dense.bias`, [C], "zeros");
      add(`${p}.attention.output.LayerNorm.weight`, [C], "ones");
      add(`${p}.attention.output.LayerNorm.bias`, [C], "zeros");
      add(`${p}.intermediate.dense.weight`, [I, C], "normal");
      add(`${p}.intermediate.dense.bias`, [I], "zeros");
      add(`${p}.output.dense.weight`, [C, I], "normal");
      add(`${p}.output.dense.bias`, [C], "zeros");
      add(`${p}.output.LayerNorm.weight`, [C], "ones");
      add(`${p}.output.LayerNorm.bias`, [C], "zeros");
    }
    add("cls.predictions.transform.dense.weight", [C, C], "normal");
    add("cls.predictions.transform.dense.bias", [C], "zeros");
    add("cls.predictions.transform.LayerNorm.weight", [C], "ones");
    add("cls.predictions.transform.LayerNorm.bias", [C], "zeros");
    add("cls.predictions.bias", [vocabSize], "zeros");
  } else {
    add("encoder.weight", [vocabSize, C], "normal");
    for (let l = 0; l < layers; l++) {
      const p = `transformer_encoder.${l}`;
      add(`${p}.attention_norm.weight`, [C], "ones");
      add(`${p}.qkv.weight`, [3 * C, C], "normal");
      add(`${p}.wo.weight`, [C, C], "normal");
      add(`${p}.ffn_norm.weight`, [C], "ones");
      add(`${p}.ffn.w12.weight`, [2 * I, C], "normal");
      add(`${p}.ffn.w3.weight`, [C, I], "normal");
    }
    add("layer_norm.weight", [C], "ones");
  }
}

/**
 * A Llama decoder's parameters under Hugging Face `LlamaForCausalLM` names. q, k and v stand
 * back to back (one ((H + 2·KV)·D, C) matmul), and so do gate and up (one (2I, C) matmul
 * whose rows are SwiGLU's [gate | up]); model/decoder.ts checks both.
 */
export function decoderParameterLayout(config: DecoderConfig, vocabSize: number): ParamLayout {
  const { hidden: C, intermediate: I, layers } = config;
  const D = C / config.heads;
  if (!Number.isInteger(D) || C % ALIGN !== 0) throw new Error(`hidden ${C} must be a multiple of heads ${config.heads} and of ${ALIGN}`);
  return extendLayout({ architecture: config.architecture, vocabSize, entries: [], total: 0 }, (add) => {
    add("model.embed_tokens.weight", [vocabSize, C], "normal");
    for (let l = 0; l < layers; l++) {
      const p = `model.layers.${l}`;
      add(`${p}.input_layernorm.weight`, [C], "ones");
      add(`${p}.self_attn.q_proj.weight`, [config.heads * D, C], "normal");
      add(`${p}.self_attn.k_proj.weight`, [config.kvHeads * D, C], "normal");
      add(`${p}.self_attn.v_proj.weight`, [config.kvHeads * D, C], "normal");
      add(`${p}.self_attn.o_proj.weight`, [C, config.heads * D], "normal");
      add(`${p}.post_attention_layernorm.weight`, [C], "ones");
      add(`${p}.mlp.gate_proj.weight`, [I, C], "normal");
      add(`${p}.mlp.up_proj.weight`, [I, C], "normal");
      add(`${p}.mlp.down_proj.weight`, [C, I], "normal");
    }
    add("model.norm.weight", [C], "ones");
    if (!config.tieEmbeddings) add("lm_head.weight", [vocabSize, C], "normal");
  });
}

export function parameterCount(layout: ParamLayout): number {
  return layout.entries.reduce((n, e) => n + e.size, 0);
}

export function entry(layout: ParamLayout, name: string): ParamEntry {
  const e = layout.entries.find((x) => x.name === name);
  if (!e) throw new Error(`the ${layout.architecture} layout has no parameter ${name}`);
  return e;
}

/**
 * Deterministic initialisation: N(0, 0.02²) for matrices and embeddings (Box-Muller over
 * the counter hash, truncated at 2 std), ones for norm weights, zeros for biases and
 * padding. A pure function of (layout, seed).
 */
export function initParameters(layout: ParamLayout, seed: number): Float32Array {
  const out = new Float32Array(layout.total);
  for (const e of layout.entries) {
    if (e.init === "ones") out.fill(1, e.offset, e.offset + e.size);
    if (e.init !== "normal") continue;
    for (let i = 0; i < e.size; i++) {
      const at = e.offset + i;
      let z: number;
      let tries = 0;
      do {
        const u1 = (counterHash(seed, 2 * at + tries * 0x40000000) + 1) / 4294967297;
        const u2 = counterHash(seed ^ 0x5bd1e995, 2 * at + 1 + tries * 0x40000000) / 4294967296;
        z = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
        tries++;
      } while (Math.abs(z) > 2);
      out[at] = 0.02 * z;
    }
  }
  return out;
}
