// bench/decoder — what a Llama-style decoder takes on the WebAssembly backend: for each
// preset, the arena's high-water mark (the WebAssembly memory it needs, 4 GiB at most) and the
// time of a training step (forward, backward, AdamW with its two moments) at a stated batch
// and sequence length, and of generation (a prefill, then one token at a time from the cache).
// Run: node dist/bench/decoder.js [preset …] [--generate-only] (default: llama-tiny
// llama-small llama-3.2-1b; --generate-only skips the training step and its moments).
import { createWasmKernels } from "../kernels-wasm/index.js";
import { decoderPresets } from "../model/config.js";
import { Decoder } from "../model/decoder.js";
import type { Buf, DecoderKernels } from "../model/kernels.js";
import { decoderParameterLayout, initParameters, parameterCount } from "../model/layout.js";

const cases: Record<string, { batch: number; seqLen: number; vocab?: number }> = {
  "llama-tiny": { batch: 8, seqLen: 128 },
  "llama-small": { batch: 4, seqLen: 256 },
  "llama-3.2-1b": { batch: 1, seqLen: 256 },
};

/** Counts, on the backend's own allocator, the highest element any buffer reaches. */
function trackHighWater(k: DecoderKernels): { bytes(): number } {
  let top = 0;
  const alloc = k.alloc.bind(k);
  k.alloc = (count, dtype) => {
    const b = alloc(count, dtype);
    top = Math.max(top, b + count);
    return b;
  };
  return { bytes: () => top * 4 };
}

const gib = (bytes: number) => `${(bytes / 1024 ** 3).toFixed(2)} GiB`;

async function run(preset: string, train: boolean): Promise<void> {
  const config = decoderPresets[preset];
  const shape = cases[preset];
  if (!config || !shape) throw new Error(`bench/decoder: no case for preset "${preset}": use one of ${Object.keys(cases).join(", ")}`);
  const vocab = shape.vocab ?? config.vocabSize ?? 64000;
  const layout = decoderParameterLayout(config, vocab);
  const { batch: B, seqLen: T } = shape;
  const k = await createWasmKernels();
  const memory = trackHighWater(k);
  const head = `${preset} (${(parameterCount(layout) / 1e6).toFixed(1)}M parameters, vocabulary ${vocab})`;
  let model: Decoder;
  let moments: Buf[];
  try {
    model = new Decoder(k, config, layout, B * T);
    moments = train ? [k.alloc(layout.total), k.alloc(layout.total)] : [];
  } catch (err) {
    process.stdout.write(`${head}: ${train ? `training at ${B}×${T}` : "generation"} does not fit: ${(err as Error).message}\n`);
    return;
  }
  model.setParameters(initParameters(layout, 1));
  const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 7919) % vocab);
  if (train) trainingStep(model, moments, ids, B, T, head, memory.bytes);
  // Generation reuses the model's buffers; the cache is what it adds.
  const prompt = 64,
    generate = 32;
  const cache = model.newCache(1, prompt + generate);
  const g0 = performance.now();
  let logits = model.prefill(cache, ids.subarray(0, prompt), prompt);
  const g1 = performance.now();
  for (let i = 0; i < generate; i++) {
    let best = 0;
    for (let v = 1; v < vocab; v++) if (logits[v]! > logits[best]!) best = v;
    logits = model.decodeStep(cache, Int32Array.from([best]));
  }
  const g2 = performance.now();
  process.stdout.write(
    `${head}: generation: prefill of ${prompt} tokens ${((g1 - g0) / 1000).toFixed(2)} s, then ${(generate / ((g2 - g1) / 1000)).toFixed(1)} tokens/s one at a time from the cache\n`,
  );
  model.freeCache(cache);
}

/** One step: forward, backward and AdamW over every parameter. */
function trainingStep(model: Decoder, moments: Buf[], ids: Int32Array, B: number, T: number, head: string, bytes: () => number): void {
  const k = model.kernels;
  const total = model.layout.total;
  const t0 = performance.now();
  model.zeroGrads();
  const { lossSum, count } = model.step({ batch: B, seqLen: T, inputIds: ids, labels: ids }, 1 / (B * (T - 1)));
  k.adamw(model.params, model.grads, moments[0]!, moments[1]!, total, { lr: 1e-4, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step: 1 });
  const seconds = (performance.now() - t0) / 1000;
  process.stdout.write(
    `${head}: training ${B}×${T}: ${gib(bytes())} of WebAssembly memory, step ${seconds.toFixed(1)} s (${Math.round((B * T) / seconds)} tokens/s), loss ${(lossSum / count).toFixed(3)}\n`,
  );
  for (const m of moments) k.free(m);
}

const args = process.argv.slice(2);
const chosen = args.filter((a) => !a.startsWith("--"));
for (const preset of chosen.length ? chosen : Object.keys(cases)) await run(preset, !args.includes("--generate-only"));
