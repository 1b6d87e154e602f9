#!/usr/bin/env bash
# The whole GPU verification of the CUDA backend, for the day a GPU machine is lent.
#
#   scripts/gpu-check.sh --prepare    here (nvcc needed, no GPU): builds dist/ and the addon for
#                                     sm_80/sm_90, packs this machine's Node.js into .device/,
#                                     and prints the paths to carry to the GPU machine
#   scripts/gpu-check.sh              on the GPU machine (nvcc, PyTorch, the nvidia-cublas wheel,
#                                     no Node.js, no internet): the check itself, under 8 minutes
#   scripts/gpu-check.sh --emulated   here: the same program against the CPU emulation
#
# What the check does: every kernel against the reference on the device (cuBLASLt fp32 and
# TF32, and the own GEMM), bit-for-bit repeatability of two runs of a training-step-like
# sequence, matmul TFLOP/s next to PyTorch's on the same shapes, and `train --local` of the
# `tiny` model for 200 steps twice with --backend cuda (the loss falls, both runs give the same
# checkpoint bytes) and once with --backend wasm (the curves agree within tolerance), then
# bench:gpu (allma-base and azneobert against PyTorch eager and torch.compile). Results
# go to one folder: $OUT when set (the device runner's), else .device/results: gpu-check.json
# and train.json (everything), gpu-check.txt and train.txt (the summaries), torch.json,
# nvidia-smi.txt, bench-gpu.txt and the training runs under train/.
# It needs only what is carried: .device/ (node.xz and the bundled CLI, cli.mjs), dist/,
# kernels-wasm/build and kernels-cuda/build/Release/aze_cuda.node. No node_modules: the CLI is
# bundled into one file by esbuild (which vitest brings) when preparing.
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-gpu}"
out="$(mkdir -p "${OUT:-.device/results}" && cd "${OUT:-.device/results}" && pwd)"
here="$PWD"

# The CLI and its dependencies in one file, so the GPU machine needs no node_modules. ink's
# optional devtools import is replaced by a stub.
bundle_cli() {
  mkdir -p .device
  printf 'export default { initialize() {}, connectToDevTools() {} };\n' > .device/devtools-stub.mjs
  node_modules/.bin/esbuild dist/runtime/cli.js --bundle --platform=node --format=esm --target=node20 \
    --outfile=.device/cli.mjs --log-level=error --alias:react-devtools-core=./.device/devtools-stub.mjs --external:'*.node' \
    --banner:js="import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);"
  # bench:gpu too: it reads the presets and the training defaults, which need zod and yaml.
  node_modules/.bin/esbuild dist/bench/gpu.js --bundle --platform=node --format=esm --target=node20 \
    --outfile=.device/bench-gpu.mjs --log-level=error --external:'*.node' \
    --banner:js="import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);"
}

# train_check NODE STEPS: `tiny` with --backend cuda twice and --backend wasm once, compared.
train_check() {
  local node="$1" steps="$2" dir="$out/train"
  rm -rf "$dir" && mkdir -p "$dir"
  cat > "$dir/tiny.yaml" <<YAML
name: gpu-check-tiny
model:
  preset: tiny
data:
  sources: [{ name: sample, path: "$here/corpus/sample/az-sample.txt" }]
  vocabSize: 600
  seqLen: 32
training:
  seed: 7
  steps: $steps
  groups: 4
  groupSize: 2
  microBatch: 2
  lr: 0.003
  warmupSteps: 2
checkpoint:
  every: 0
cluster:
  shards: 1
  backend: auto
YAML
  local run backend status=0
  for run in cuda-a cuda-b wasm; do
    backend="${run%-*}"
    (cd "$dir" && AZE_RUNS="$dir/runs" "$node" "$here/.device/cli.mjs" train --local --config tiny.yaml --run "$run" --backend "$backend" > "$run.log" 2>&1) ||
      { echo "gpu-check: train: the $run run failed: $(tail -1 "$dir/$run.log")"; status=1; }
  done
  [ "$status" -eq 0 ] || return 1
  "$node" dist/bench/gpu-check-train.js --runs "$dir/runs" --cuda cuda-a,cuda-b --wasm wasm --out "$out/train.json" | tee "$out/train.txt"
  return "${PIPESTATUS[0]}"
}

case "$mode" in
--prepare)
  npx tsc -p tsconfig.json
  node scripts/build-native.mjs kernels-cuda
  test -f kernels-cuda/build/Release/aze_cuda.node || { echo "gpu-check: the addon was not built (is nvcc on PATH?)" >&2; exit 1; }
  test -f kernels-wasm/build/kernels.wasm || npm run build:wasm
  bundle_cli
  # The official Node.js binary is self-contained (glibc only); xz brings it to about a quarter.
  xz -T2 -6 -c "$(command -v node)" > .device/node.xz
  du -shc .device dist kernels-wasm/build kernels-cuda/build/Release/aze_cuda.node
  echo "gpu-check: carry .device dist kernels-wasm/build kernels-cuda/build/Release/aze_cuda.node, then run scripts/gpu-check.sh there"
  exit 0
  ;;
--emulated)
  # Everything that runs without a GPU: the kernel checks at small sizes, and one training
  # step per run (the emulation runs about 6 tokens/s).
  test -f kernels-cuda/emulated/build/Release/aze_cuda_emulated.node || node scripts/build-native.mjs kernels-cuda/emulated
  test -f .device/cli.mjs || bundle_cli
  status=0
  node dist/bench/gpu-check.js --addon emulated --size small --out "$out/gpu-check.json" | tee "$out/gpu-check.txt" || status=1
  AZE_CUDA_ADDON=emulated train_check node "${TRAIN_STEPS:-1}" || status=1
  AZE_CUDA_ADDON=emulated node .device/bench-gpu.mjs --quick | tee "$out/bench-gpu.txt" || status=1
  exit "$status"
  ;;
gpu) ;;
*)
  echo "usage: scripts/gpu-check.sh [--prepare | --emulated]" >&2
  exit 2
  ;;
esac

# ---- on the GPU machine ------------------------------------------------------------------------
node=.device/node
if [ ! -x "$node" ]; then
  test -f .device/node.xz || { echo "gpu-check: .device/node.xz is missing: run scripts/gpu-check.sh --prepare where Node.js is" >&2; exit 1; }
  if command -v xz >/dev/null; then xz -dc .device/node.xz > "$node"; else python3 -c 'import lzma,sys; sys.stdout.buffer.write(lzma.open(".device/node.xz").read())' > "$node"; fi
  chmod +x "$node"
fi
test -f kernels-cuda/build/Release/aze_cuda.node || { echo "gpu-check: kernels-cuda/build/Release/aze_cuda.node was not carried" >&2; exit 1; }
test -f dist/bench/gpu-check.js || { echo "gpu-check: dist/ was not carried (run --prepare here first)" >&2; exit 1; }
test -f .device/cli.mjs || { echo "gpu-check: .device/cli.mjs is missing (run --prepare here first)" >&2; exit 1; }

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader | tee "$out/nvidia-smi.txt" || true

# cuBLASLt from the Python wheel (nvidia-cublas), unless AZE_CUBLASLT already names one.
if [ -z "${AZE_CUBLASLT:-}" ]; then
  AZE_CUBLASLT="$(python3 - <<'PY' || true
import glob, os, site
roots = site.getsitepackages() + [site.getusersitepackages()]
found = [p for r in roots for p in sorted(glob.glob(os.path.join(r, "nvidia", "*", "lib", "libcublasLt.so.1[23]")), reverse=True)]
print(found[0] if found else "")
PY
)"
  export AZE_CUBLASLT
fi
echo "gpu-check: AZE_CUBLASLT=${AZE_CUBLASLT:-(not found: the addon tries the usual names)}"

# PyTorch's matmul on the shapes the addon measures: fp32 inputs with TF32 (what our cuBLASLt
# path runs) and bf16 (the issue's anchor: about 790 TFLOP/s at 8192³ on this machine).
timeout 180 python3 - > "$out/torch.json" <<'PY' || echo '{}' > "$out/torch.json"
import json, time, torch
torch.backends.cuda.matmul.allow_tf32 = True
result = {}
for m, n, k in [(4096, 4096, 4096), (8192, 8192, 8192), (8192, 3072, 768)]:
    figures = {}
    for name, dtype in (("tf32", torch.float32), ("bf16", torch.bfloat16)):
        # The same constant inputs as the addon's measurement.
        a = torch.full((m, k), 0.5, device="cuda", dtype=dtype)
        b = torch.full((k, n), 0.25, device="cuda", dtype=dtype)
        torch.matmul(a, b)
        torch.cuda.synchronize()
        reps = 20
        t0 = time.perf_counter()
        for _ in range(reps):
            torch.matmul(a, b)
        torch.cuda.synchronize()
        figures[name] = 2 * m * n * k * reps / (time.perf_counter() - t0) / 1e12
    result[f"{m}x{n}x{k}"] = figures
print(json.dumps(result))
PY
echo "gpu-check: PyTorch $(cat "$out/torch.json")"

status=0
timeout 300 "$node" dist/bench/gpu-check.js --addon device --size gpu --torch "$out/torch.json" --out "$out/gpu-check.json" | tee "$out/gpu-check.txt" || status=1
timeout 180 bash -c "$(declare -f train_check); out='$out' here='$here' train_check '$node' '${TRAIN_STEPS:-200}'" || status=1
# bench:gpu: tokens/s and model FLOP utilisation of allma-base and azneobert against PyTorch
# eager and torch.compile on this device (what is left of the 8 minutes; a slow figure is no failure).
timeout 240 "$node" .device/bench-gpu.mjs | tee "$out/bench-gpu.txt" || echo "gpu-check: bench:gpu did not finish in its 240 s"
echo "gpu-check: $([ "$status" -eq 0 ] && echo PASS || echo FAIL); results in $out"
exit "$status"
