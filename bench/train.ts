// bench:train — training throughput on one core: forward + backward + AdamW for `tiny` and
// `allma-small` at sequence length 128, in tokens/s, with the model FLOPs per token and the
// achieved GFLOP/s; and, where /usr/bin/python3 (or python3) imports torch, the same model
// and batch in PyTorch on one thread and on all cores in the same run, with the BLAS PyTorch
// really used (no ratio against a reference BLAS) and the ratio.
import { createWasmKernels } from "../kernels-wasm/index.js";
import { presets } from "../model/config.js";
import { Encoder } from "../model/encoder.js";
import { initParameters, parameterCount, parameterLayout } from "../model/layout.js";
import { applyAdamW } from "../model/optimizer.js";
import { trainingDefaults as training } from "../runtime/config.js";
import { availableParallelism } from "node:os";
import { median, pythonFigure, ratioAgainst } from "./peers.js";

const T = 128;
const vocab = 8192;
const cases = [
  { preset: "tiny", batch: 8 },
  { preset: "allma-small", batch: 4 },
];

function batchOf(B: number) {
  const n = B * T;
  return {
    batch: B,
    seqLen: T,
    inputIds: Int32Array.from({ length: n }, (_, i) => 5 + ((i * 7919) % (vocab - 5))),
    attentionMask: new Int32Array(n).fill(1),
    tokenTypeIds: new Int32Array(n),
    labels: Int32Array.from({ length: n }, (_, i) => (i % 7 === 3 ? 5 + ((i * 104729) % (vocab - 5)) : -100)),
  };
}

const torchScript = (preset: string, B: number, reps: number, threads: number) => `
import time, torch
torch.set_num_threads(${threads})
from torch import nn
H, L, NH, I = ${presets[preset]!.hidden}, ${presets[preset]!.layers}, ${presets[preset]!.heads}, ${presets[preset]!.intermediate}
V, T, B = ${vocab}, ${T}, ${B}
class Layer(nn.Module):
    def __init__(s):
        super().__init__(); s.qkv = nn.Linear(H, 3*H); s.o = nn.Linear(H, H); s.ln1 = nn.LayerNorm(H); s.f1 = nn.Linear(H, I); s.f2 = nn.Linear(I, H); s.ln2 = nn.LayerNorm(H)
    def forward(s, x):
        q, k, v = s.qkv(x).view(B, T, 3, NH, H // NH).permute(2, 0, 3, 1, 4)
        p = torch.softmax(q @ k.transpose(-1, -2) / (H // NH) ** 0.5, dim=-1)
        a = (p @ v).transpose(1, 2).reshape(B, T, H)
        x = s.ln1(x + s.o(a)); return s.ln2(x + s.f2(torch.nn.functional.gelu(s.f1(x))))
class Model(nn.Module):
    def __init__(s):
        super().__init__(); s.emb = nn.Embedding(V, H); s.pos = nn.Embedding(T, H); s.ln = nn.LayerNorm(H); s.layers = nn.ModuleList([Layer() for _ in range(L)])
        s.t = nn.Linear(H, H); s.tln = nn.LayerNorm(H); s.bias = nn.Parameter(torch.zeros(V))
    def forward(s, ids, rows, labels):
        x = s.ln(s.emb(ids) + s.pos.weight[:T])
        for l in s.layers: x = l(x)
        h = s.tln(torch.nn.functional.gelu(s.t(x.view(-1, H)[rows])))
        return torch.nn.functional.cross_entropy(h @ s.emb.weight.T + s.bias, labels)
m = Model(); opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
ids = torch.randint(5, V, (B, T)); rows = torch.arange(3, B*T, 7); labels = torch.randint(5, V, (rows.numel(),))
ts = []
for _ in range(${reps} + 1):
    t = time.perf_counter(); opt.zero_grad(); m(ids, rows, labels).backward(); opt.step(); ts.append(time.perf_counter() - t)
print(B * T / sorted(ts[1:])[len(ts[1:]) // 2])`;

const kernels = await createWasmKernels();
console.log(`bench:train — one core, ${kernels.name}, sequence length ${T}, vocabulary ${vocab}, forward + backward + AdamW, median of 3 steps`);
for (const { preset, batch: B } of cases) {
  const config = presets[preset]!;
  const layout = parameterLayout(config, vocab);
  const model = new Encoder(kernels, { ...config, dropout: 0, attentionDropout: 0 }, layout, B * T);
  model.setParameters(initParameters(layout, 1));
  const m = kernels.alloc(layout.total),
    v = kernels.alloc(layout.total);
  const batch = batchOf(B);
  const times: number[] = [];
  for (let r = 0; r < 4; r++) {
    const t0 = performance.now();
    model.zeroGrads();
    model.step(batch, 1 / 146);
    applyAdamW(kernels, { params: model.params, grad: model.grads, m, v }, layout, 0, layout.total, { lr: 1e-3, step: r + 1, clip: 1, training });
    if (r > 0) times.push(performance.now() - t0);
  }
  const ms = median(times);
  const tokensPerSec = (B * T) / (ms / 1000);
  const params = parameterCount(layout);
  const flopsPerToken = 6 * params;
  const pythons = ["/usr/bin/python3", "python3"];
  const install = "PyTorch is not installed (apt-get install python3-torch libopenblas0-pthread)";
  const one = pythonFigure(torchScript(preset, B, 3, 1), pythons);
  const cores = availableParallelism();
  const all = one && cores > 1 ? pythonFigure(torchScript(preset, B, 3, cores), pythons, { threads: cores }) : undefined;
  console.log(
    `${preset.padEnd(12)} ${(params / 1e6).toFixed(1)}M params, batch ${B}×${T}: ${tokensPerSec.toFixed(0)} tok/s, ${(flopsPerToken / 1e6).toFixed(1)} MFLOP/token, ${((tokensPerSec * flopsPerToken) / 1e9).toFixed(2)} GFLOP/s` +
      ` | PyTorch 1 thread ${one ? `${one.value.toFixed(0)} tok/s, ` : ""}${ratioAgainst(tokensPerSec, one, install)}` +
      (all ? ` | PyTorch ${cores} threads ${all.value.toFixed(0)} tok/s, ${ratioAgainst(tokensPerSec, all, install)} (aze-run on one core)` : "") +
      (one ? ` | PyTorch's BLAS: ${one.blas} (${one.libraries.join(", ") || "none mapped"})` : ""),
  );
}
