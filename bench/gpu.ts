// bench:gpu — training throughput on the CUDA backend: tokens/s and model FLOP utilisation of
// `allma-base` and `azneobert` at sequence lengths 512 and 1024, each with the largest batch
// that fits, and in the same run the same model in PyTorch (eager, and torch.compile where it
// works; at the first length only, since compiling takes a minute a model) on the same
// device, with the ratios.
//
// Each (model, length, batch) is measured in a child process of its own, so a batch that does
// not fit ends that child only; the parent tries the next smaller batch.
// `--quick` measures `tiny` and `tiny-neobert` at length 16 instead: what runs here, on the
// CPU emulation of the addon (AZE_CUDA_ADDON=emulated), to check the program itself.
// Never: prints a ratio against a peer that did not run on a GPU.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { createBackend, measurePeakFlops } from "../model/backend.js";
import { presets, type ModelConfig } from "../model/config.js";
import { Encoder } from "../model/encoder.js";
import { initParameters, parameterCount, parameterLayout } from "../model/layout.js";
import { applyAdamW } from "../model/optimizer.js";
import { trainingDefaults as training } from "../runtime/config.js";
import { median, pythonFigure } from "./peers.js";

const quick = process.argv.includes("--quick");
/** The published models' vocabulary; the quick check's is small, since the emulation runs at a few tokens a second. */
const vocab = quick ? 512 : 64_000;
const cases = quick
  ? [
      { preset: "tiny", seqLen: 16 },
      { preset: "tiny-neobert", seqLen: 16 },
    ]
  : [
      { preset: "allma-base", seqLen: 512 },
      { preset: "allma-base", seqLen: 1024 },
      { preset: "azneobert", seqLen: 512 },
      { preset: "azneobert", seqLen: 1024 },
    ];
const batches = quick ? [2, 1] : [128, 96, 64, 48, 32, 24, 16, 12, 8, 4, 2, 1];

/** Training FLOPs per token: 6 per parameter (forward and backward), plus attention's scores and mixing. */
function flopsPerToken(config: ModelConfig, params: number, seqLen: number): number {
  return 6 * params + 12 * config.layers * seqLen * config.hidden;
}

interface One {
  tokensPerSec: number;
  peakFlops: number;
  device: string;
}

/** One measurement in this process: forward + backward + AdamW, median of 5 steps after 2 warm-ups. */
async function measureOne(preset: string, seqLen: number, batch: number): Promise<One> {
  const { kernels, reason } = await createBackend("cuda");
  const config = { ...presets[preset]!, maxPositions: Math.max(presets[preset]!.maxPositions, seqLen), dropout: 0, attentionDropout: 0 };
  const layout = parameterLayout(config, vocab);
  const model = new Encoder(kernels, config, layout, batch * seqLen);
  model.setParameters(initParameters(layout, 1));
  const m = kernels.alloc(layout.total);
  const v = kernels.alloc(layout.total);
  const n = batch * seqLen;
  const input = {
    batch,
    seqLen,
    inputIds: Int32Array.from({ length: n }, (_, i) => 5 + ((i * 7919) % (vocab - 5))),
    attentionMask: new Int32Array(n).fill(1),
    tokenTypeIds: new Int32Array(n),
    labels: Int32Array.from({ length: n }, (_, i) => (i % 7 === 3 ? 5 + ((i * 104729) % (vocab - 5)) : -100)),
  };
  const times: number[] = [];
  const one = new Float32Array(1);
  for (let r = 0; r < 7; r++) {
    const t0 = performance.now();
    model.zeroGrads();
    model.step(input, 1 / n);
    applyAdamW(kernels, { params: model.params, grad: model.grads, m, v }, layout, 0, layout.total, { lr: 1e-4, step: r + 1, clip: 1, training });
    kernels.download(model.params, one); // one element: waits for the device
    if (r >= 2) times.push(performance.now() - t0);
  }
  // The emulation runs on the CPU: a small product measures it in reasonable time.
  return { tokensPerSec: n / (median(times) / 1000), peakFlops: measurePeakFlops(kernels, quick ? 128 : undefined), device: reason };
}

/** The PyTorch twin of a preset on the GPU, as a Python program printing tokens/s. */
function torchScript(config: ModelConfig, seqLen: number, batch: number, compile: boolean): string {
  const neobert = config.architecture === "neobert";
  return `
import time, torch, torch.nn as nn, torch.nn.functional as F
torch.backends.cuda.matmul.allow_tf32 = True; torch.backends.cudnn.allow_tf32 = True
dev = "cuda"
H, L, NH, I, V, T, B = ${config.hidden}, ${config.layers}, ${config.heads}, ${config.intermediate}, ${vocab}, ${seqLen}, ${batch}
D = H // NH
def rope(x):
    f = 1.0 / (${config.ropeBase} ** (torch.arange(0, D, 2, device=dev).float() / D))
    a = torch.outer(torch.arange(T, device=dev).float(), f)
    c, s = a.cos()[None, None], a.sin()[None, None]
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x1 * c - x2 * s, x1 * s + x2 * c], -1).flatten(-2)
class Layer(nn.Module):
    def __init__(s):
        super().__init__(); s.qkv = nn.Linear(H, 3 * H, bias=${neobert ? "False" : "True"}); s.o = nn.Linear(H, H, bias=${neobert ? "False" : "True"})
        s.n1 = ${neobert ? "nn.RMSNorm(H)" : "nn.LayerNorm(H)"}; s.n2 = ${neobert ? "nn.RMSNorm(H)" : "nn.LayerNorm(H)"}
        s.f1 = nn.Linear(H, ${neobert ? "2 * I, bias=False" : "I"}); s.f2 = nn.Linear(I, H, bias=${neobert ? "False" : "True"})
    def attn(s, x):
        q, k, v = s.qkv(x).view(B, T, 3, NH, D).permute(2, 0, 3, 1, 4)
        ${neobert ? "q, k = rope(q), rope(k)" : "pass"}
        return s.o(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, T, H))
    def ffn(s, x):
        ${neobert ? "g, u = s.f1(x).chunk(2, -1); return s.f2(F.silu(g) * u)" : "return s.f2(F.gelu(s.f1(x), approximate='tanh'))"}
    def forward(s, x):
        ${neobert ? "x = x + s.attn(s.n1(x)); return x + s.ffn(s.n2(x))" : "x = s.n1(x + s.attn(x)); return s.n2(x + s.ffn(x))"}
class Model(nn.Module):
    def __init__(s):
        super().__init__(); s.emb = nn.Embedding(V, H); s.pos = nn.Embedding(T, H); s.layers = nn.ModuleList([Layer() for _ in range(L)]); s.bias = nn.Parameter(torch.zeros(V))
    def forward(s, ids, rows, labels):
        x = s.emb(ids) ${neobert ? "" : "+ s.pos.weight[:T]"}
        for l in s.layers: x = l(x)
        return F.cross_entropy(x.reshape(-1, H)[rows] @ s.emb.weight.T + s.bias, labels)
m = Model().to(dev); opt = torch.optim.AdamW(m.parameters(), lr=1e-4, fused=True)
step = torch.compile(m) if ${compile ? "True" : "False"} else m
ids = torch.randint(5, V, (B, T), device=dev); rows = torch.arange(3, B * T, 7, device=dev); labels = torch.randint(5, V, (rows.numel(),), device=dev)
ts = []
for i in range(8):
    torch.cuda.synchronize(); t = time.perf_counter()
    opt.zero_grad(set_to_none=True); step(ids, rows, labels).backward(); opt.step()
    torch.cuda.synchronize(); ts.append(time.perf_counter() - t)
print(B * T / sorted(ts[3:])[len(ts[3:]) // 2])`;
}

async function main(): Promise<void> {
  const self = fileURLToPath(import.meta.url);
  console.log(
    `bench:gpu — forward + backward + AdamW per step, vocabulary ${vocab}, median of 5 steps after 2 warm-ups${quick ? " (quick: the small presets)" : ""}`,
  );
  for (const { preset, seqLen } of cases) {
    const config = presets[preset]!;
    const params = parameterCount(parameterLayout({ ...config, maxPositions: Math.max(config.maxPositions, seqLen) }, vocab));
    let result: (One & { batch: number }) | undefined;
    let lastError = "";
    for (const batch of batches) {
      const child = spawnSync(process.execPath, [self, "--one", preset, String(seqLen), String(batch), ...(quick ? ["--quick"] : [])], {
        encoding: "utf8",
        env: process.env,
      });
      const line = child.stdout.trim().split("\n").at(-1) ?? "";
      if (child.status === 0 && line.startsWith("{")) {
        result = { ...(JSON.parse(line) as One), batch };
        break;
      }
      lastError = (
        child.stderr
          .trim()
          .split("\n")
          .find((l) => /error|memory|device/i.test(l)) ??
        child.stderr.trim().split("\n").at(-1) ??
        ""
      ).slice(0, 200);
      if (/no CUDA device|not built|cannot load/i.test(lastError)) break; // no smaller batch helps
    }
    if (!result) {
      console.log(`${preset} T=${seqLen}: did not run (${lastError || "no batch fitted"})`);
      continue;
    }
    const flops = flopsPerToken(config, params, seqLen) * result.tokensPerSec;
    const mfu = flops / result.peakFlops;
    let line = `${preset.padEnd(12)} T=${String(seqLen).padEnd(5)} batch ${String(result.batch).padStart(3)}: ${result.tokensPerSec.toFixed(0).padStart(8)} tok/s, ${(flops / 1e12).toFixed(1)} TFLOP/s, MFU ${(mfu * 100).toFixed(1)}% of the measured matmul peak ${(result.peakFlops / 1e12).toFixed(1)} TFLOP/s`;
    // torch.compile takes a minute per model: at the first length only, to fit gpu-check's 8 minutes.
    for (const compile of seqLen === cases[0]!.seqLen ? [false, true] : [false]) {
      const torch = quick ? undefined : pythonFigure(torchScript(config, seqLen, result.batch, compile), ["python3"], { threads: 4 });
      const label = compile ? "torch.compile" : "PyTorch eager";
      line += torch
        ? ` | ${label} ${torch.value.toFixed(0)} tok/s, ratio ${(result.tokensPerSec / torch.value).toFixed(2)}`
        : ` | ${label}: ${quick ? "not run (quick)" : "did not run"}`;
    }
    console.log(line);
  }
}

if (process.argv[2] === "--one") {
  const [preset, seqLen, batch] = process.argv.slice(3);
  const r = await measureOne(preset!, Number(seqLen), Number(batch));
  console.log(JSON.stringify(r));
} else await main();
