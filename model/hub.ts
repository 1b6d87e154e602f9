// Export to and import from the Hugging Face folder layout.
//
// Owns: config.json (BertForMaskedLM for `bert`; for `neobert` the NeoBERT layout, documented
// in docs/model.md; a fine-tuned model's task class, such as BertForQuestionAnswering), model.safetensors with the standard parameter names and shapes,
// tokenizer.json, tokenizer_config.json and special_tokens_map.json; and turning such a
// folder (ours, or a BERT/NeoBERT one from elsewhere) back into a checkpoint that training or
// evaluation starts from, refusing what it cannot honour (an activation our kernels lack,
// relative positions, a tokenizer setting) with one line naming the key.
// Never: writes half a folder (temporary folder, then rename), or guesses a missing setting.
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { loadTokenizer } from "../corpus/load-tokenizer.js";
import { UserError } from "../runtime/errors.js";
import { beginCheckpoint, finishCheckpoint, readCheckpointRange, readManifest, stepFolderName, writeSlice } from "./checkpoint.js";
import { modelConfigSchema, type ModelConfig } from "./config.js";
import { parameterLayout } from "./layout.js";
import { f32, readSafetensors, writeSafetensors, type NamedTensor } from "./safetensors.js";
import type { Task } from "./tasks.js";

function hfConfig(model: ModelConfig, vocabSize: number, seqLen: number): Record<string, unknown> {
  if (model.architecture === "bert")
    return {
      architectures: ["BertForMaskedLM"],
      model_type: "bert",
      vocab_size: vocabSize,
      hidden_size: model.hidden,
      num_hidden_layers: model.layers,
      num_attention_heads: model.heads,
      intermediate_size: model.intermediate,
      hidden_act: model.gelu === "erf" ? "gelu" : "gelu_pytorch_tanh",
      max_position_embeddings: model.maxPositions,
      type_vocab_size: Math.max(1, model.typeVocabSize),
      layer_norm_eps: model.normEps,
      hidden_dropout_prob: model.dropout,
      attention_probs_dropout_prob: model.attentionDropout,
      initializer_range: 0.02,
      pad_token_id: 0,
      tie_word_embeddings: true,
      aze_run: { seq_len: seqLen },
    };
  return {
    architectures: ["NeoBERTLMHead"],
    model_type: "neobert",
    vocab_size: vocabSize,
    hidden_size: model.hidden,
    num_hidden_layers: model.layers,
    num_attention_heads: model.heads,
    intermediate_size: model.intermediate,
    max_length: model.maxPositions,
    norm_eps: model.normEps,
    rope_theta: model.ropeBase,
    pad_token_id: 0,
    tie_word_embeddings: true,
    aze_run: { seq_len: seqLen },
  };
}

/**
 * The config.json entries of a model fine-tuned on `task`, merged over the base model's:
 * its Transformers class (`BertForSequenceClassification`, `BertForTokenClassification`,
 * `BertForQuestionAnswering`; NeoBERT… for `neobert`) and the label names of classifiers. The
 * head's tensors carry the names those classes load: `classifier.*`, or `qa_outputs.weight`
 * (2,C) and `qa_outputs.bias` (2), start logits first.
 */
export function taskHubConfig(model: ModelConfig, task: Task, labels: string[]): Record<string, unknown> {
  const kind = {
    classification: "SequenceClassification",
    "pair-classification": "SequenceClassification",
    "token-classification": "TokenClassification",
    "question-answering": "QuestionAnswering",
  }[task];
  const architectures = [`${model.architecture === "bert" ? "Bert" : "NeoBERT"}For${kind}`];
  if (task === "question-answering") return { architectures };
  return {
    architectures,
    id2label: Object.fromEntries(labels.map((l, i) => [String(i), l])),
    label2id: Object.fromEntries(labels.map((l, i) => [l, i])),
    ...(task !== "token-classification" && { problem_type: "single_label_classification" }),
  };
}

/** What a Hugging Face folder holds, as aze-run reads it. */
export interface HubModel {
  model: ModelConfig;
  vocabSize: number;
  seqLen: number;
  /** The flat parameter vector of `parameterLayout(model, vocabSize)`. */
  params: Float32Array;
  tokenizerFile: string;
  /** The training step it was saved at (0 when the folder does not say). */
  step: number;
}

/** A trained model, from a checkpoint folder or a Hugging Face folder written by `export`. */
export function readModel(path: string): HubModel {
  if (!existsSync(join(path, "manifest.json"))) {
    if (existsSync(join(path, "config.json"))) return readHubFolder(path);
    throw new UserError(`${path} is neither a checkpoint (no manifest.json) nor a Hugging Face folder (no config.json).`);
  }
  const { params, manifest } = readCheckpointRange(path, 0, readManifest(path).total);
  if (!manifest.model) throw new UserError(`${path} was written without its model config: use a checkpoint of this version of aze-run.`);
  const tokenizerFile = join(path, "tokenizer.json");
  if (!existsSync(tokenizerFile)) throw new UserError(`${path} has no tokenizer.json.`);
  return { model: manifest.model, vocabSize: manifest.vocabSize, seqLen: manifest.seqLen, params, tokenizerFile, step: manifest.step };
}

/**
 * Writes a Hugging Face folder whole (temporary folder, then rename): config.json with
 * `config` merged over the model's, the tensors, the tokenizer files, and any extra `files`.
 */
export function writeHubFolder(
  out: string,
  m: {
    model: ModelConfig;
    vocabSize: number;
    seqLen: number;
    tensors: NamedTensor[];
    tokenizerFile: string;
    config?: Record<string, unknown>;
    metadata?: Record<string, string>;
    files?: Record<string, string>;
  },
): string {
  // resolve: `out/` must not put the temporary folder inside the one it replaces.
  const temp = `${resolve(out)}.tmp-${process.pid}`;
  rmSync(temp, { recursive: true, force: true });
  mkdirSync(temp, { recursive: true });
  writeSafetensors(join(temp, "model.safetensors"), m.tensors, { format: "pt", ...m.metadata });
  writeFileSync(join(temp, "config.json"), `${JSON.stringify({ ...hfConfig(m.model, m.vocabSize, m.seqLen), ...m.config }, null, 2)}\n`);
  copyFileSync(m.tokenizerFile, join(temp, "tokenizer.json"));
  const special = { pad_token: "[PAD]", unk_token: "[UNK]", cls_token: "[CLS]", sep_token: "[SEP]", mask_token: "[MASK]" };
  writeFileSync(join(temp, "special_tokens_map.json"), `${JSON.stringify(special, null, 2)}\n`);
  writeFileSync(
    join(temp, "tokenizer_config.json"),
    `${JSON.stringify({ tokenizer_class: "PreTrainedTokenizerFast", model_max_length: m.model.maxPositions, ...special }, null, 2)}\n`,
  );
  for (const [name, content] of Object.entries(m.files ?? {})) writeFileSync(join(temp, name), content);
  rmSync(out, { recursive: true, force: true });
  mkdirSync(dirname(out), { recursive: true });
  renameSync(temp, out);
  return out;
}

/** Writes a Hugging Face folder for a checkpoint; returns the folder. */
export function exportCheckpoint(checkpoint: string, out: string): string {
  const m = readModel(checkpoint);
  const layout = parameterLayout(m.model, m.vocabSize);
  const tensors = layout.entries.map((e) => ({ name: e.name, dtype: "F32" as const, shape: e.shape, data: m.params.subarray(e.offset, e.offset + e.size) }));
  return writeHubFolder(out, { ...m, tensors, metadata: { aze_run_step: String(m.step) } });
}

/**
 * Hugging Face's hidden_act names of the activations our kernels have: "gelu" is the exact
 * (erf) GELU, "gelu_new" and "gelu_pytorch_tanh" its tanh approximation.
 */
const hfActivations: Record<string, ModelConfig["gelu"]> = { gelu: "erf", gelu_new: "tanh", gelu_pytorch_tanh: "tanh" };

/**
 * Reads a Hugging Face folder (extra tensors, such as a task head, are ignored). The
 * sequence length is aze_run.seq_len where export wrote it, else `seqLen.given` (import's
 * --seq-len); where neither is there, `seqLen.fallback` "max_position_embeddings" takes the
 * longest sequence the model has positions for (evaluation and fine-tuning on the folder),
 * and "refuse" names the flag to pass.
 */
export function readHubFolder(
  dir: string,
  seqLen: { given?: number; fallback: "max_position_embeddings" | "refuse" } = { fallback: "max_position_embeddings" },
): HubModel {
  const configFile = join(dir, "config.json");
  if (!existsSync(configFile)) throw new UserError(`${dir} has no config.json: is it a Hugging Face model folder?`);
  const c = JSON.parse(readFileSync(configFile, "utf8")) as Record<string, number | string | string[] | Record<string, number>>;
  const bert = c.model_type === "bert";
  if (!bert && c.model_type !== "neobert") throw new UserError(`${configFile}: model_type "${c.model_type}" is not bert or neobert.`);
  // BertConfig's own default is "gelu", so a missing hidden_act means the exact GELU to the library too.
  const act = bert ? (c.hidden_act ?? "gelu") : undefined;
  if (bert && (typeof act !== "string" || !hfActivations[act]))
    throw new UserError(
      `${configFile}: hidden_act ${JSON.stringify(act)} is not supported: aze-run has the exact GELU ("gelu") and its tanh approximation ("gelu_new", "gelu_pytorch_tanh").`,
    );
  if (bert && c.position_embedding_type !== undefined && c.position_embedding_type !== "absolute")
    throw new UserError(
      `${configFile}: position_embedding_type ${JSON.stringify(c.position_embedding_type)} is not supported: aze-run's BERT has absolute positions only.`,
    );
  const maxPositions = bert ? c.max_position_embeddings : c.max_length;
  const model = modelConfigSchema.parse({
    architecture: bert ? "bert" : "neobert",
    hidden: c.hidden_size,
    layers: c.num_hidden_layers,
    heads: c.num_attention_heads,
    intermediate: c.intermediate_size,
    maxPositions,
    typeVocabSize: bert ? c.type_vocab_size : 0,
    normEps: bert ? c.layer_norm_eps : c.norm_eps,
    dropout: bert ? c.hidden_dropout_prob : 0,
    attentionDropout: bert ? c.attention_probs_dropout_prob : 0,
    // NeoBERT's feed-forward is SwiGLU: no GELU is used, "tanh" is only the schema's value.
    gelu: act ? hfActivations[act as string] : "tanh",
    ropeBase: bert ? 10000 : c.rope_theta,
  });
  const recorded = (c.aze_run as Record<string, number> | undefined)?.seq_len;
  const length = seqLen.given ?? recorded ?? (seqLen.fallback === "max_position_embeddings" ? model.maxPositions : undefined);
  if (length === undefined)
    throw new UserError(
      `${configFile}: no aze_run.seq_len (the sequence length the model was trained at, which a checkpoint records): pass --seq-len N (at most ${bert ? "max_position_embeddings" : "max_length"}, ${model.maxPositions}).`,
    );
  if (length > model.maxPositions)
    throw new UserError(
      `${configFile}: a sequence length of ${length} is longer than the ${model.maxPositions} positions the model has: pass a smaller --seq-len.`,
    );
  const vocabSize = c.vocab_size as number;
  const layout = parameterLayout(model, vocabSize);
  const weights = readSafetensors(join(dir, "model.safetensors"));
  const params = new Float32Array(layout.total);
  for (const e of layout.entries) {
    const t = weights.tensors.get(e.name);
    if (!t || JSON.stringify(t.shape) !== JSON.stringify(e.shape))
      throw new UserError(
        `${dir}/model.safetensors: ${e.name} is ${t ? `of shape ${JSON.stringify(t.shape)}` : "missing"}, expected ${JSON.stringify(e.shape)}.`,
      );
    params.set(f32(weights, e.name, dir), e.offset);
  }
  const tokenizerFile = join(dir, "tokenizer.json");
  if (!existsSync(tokenizerFile)) throw new UserError(`${dir} has no tokenizer.json.`);
  // Read it now, so a tokenizer aze-run cannot honour is refused before anything is written.
  const tokenizer = loadTokenizer(tokenizerFile);
  if (tokenizer.vocabSize !== vocabSize) throw new UserError(`${tokenizerFile}: ${tokenizer.vocabSize} tokens, but config.json's vocab_size is ${vocabSize}.`);
  return { model, vocabSize, seqLen: length, params, tokenizerFile, step: Number(weights.metadata.aze_run_step ?? 0) };
}

/**
 * Reads a Hugging Face folder into a step-0 checkpoint under `runDir`; `seqLen` (--seq-len)
 * is needed where config.json has no aze_run.seq_len.
 */
export function importHub(dir: string, runDir: string, seqLen?: number): string {
  const { model, vocabSize, seqLen: length, params, tokenizerFile } = readHubFolder(dir, { given: seqLen, fallback: "refuse" });
  const layout = parameterLayout(model, vocabSize);
  if (existsSync(join(runDir, "checkpoints", stepFolderName(0))))
    throw new UserError(`${runDir} already holds a step-0 checkpoint: import into another --run.`);
  const pending = beginCheckpoint(runDir, 0);
  const slice = writeSlice(pending.temp, 0, 1, 0, { params, m: new Float32Array(layout.total), v: new Float32Array(layout.total) });
  const tokenizerText = readFileSync(tokenizerFile, "utf8");
  return finishCheckpoint(
    pending,
    {
      step: 0,
      configHash: "imported",
      seed: 0,
      tokenizerHash: createHash("sha256").update(tokenizerText).digest("hex"),
      dataPosition: { nextSample: 0 },
      total: layout.total,
      layout: layout.entries.map(({ name, offset, shape, size }) => ({ name, offset, shape, size })),
      architecture: model.architecture,
      vocabSize,
      model,
      seqLen: length,
      shards: [slice],
    },
    Infinity,
    { "tokenizer.json": tokenizerFile },
  );
}
