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
# sequence, and matmul TFLOP/s next to PyTorch's on the same shapes. Results go to one folder:
# $OUT when set (the device runner's), else .device/results: gpu-check.json (everything),
# gpu-check.txt (the summary), torch.json and nvidia-smi.txt.
# It needs only what is carried: .device/ (node.xz), dist/ and kernels-cuda/build/Release/aze_cuda.node.
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-gpu}"
out="${OUT:-.device/results}"
mkdir -p "$out"

case "$mode" in
--prepare)
  npx tsc -p tsconfig.json
  node scripts/build-native.mjs kernels-cuda
  test -f kernels-cuda/build/Release/aze_cuda.node || { echo "gpu-check: the addon was not built (is nvcc on PATH?)" >&2; exit 1; }
  mkdir -p .device
  # The official Node.js binary is self-contained (glibc only); xz brings it to about a third.
  xz -T2 -6 -c "$(command -v node)" > .device/node.xz
  du -sh .device/node.xz dist kernels-cuda/build/Release/aze_cuda.node
  echo "gpu-check: carry .device dist kernels-cuda/build/Release/aze_cuda.node, then run scripts/gpu-check.sh there"
  exit 0
  ;;
--emulated)
  test -f kernels-cuda/emulated/build/Release/aze_cuda_emulated.node || node scripts/build-native.mjs kernels-cuda/emulated
  node dist/bench/gpu-check.js --addon emulated --size small --out "$out/gpu-check-emulated.json" | tee "$out/gpu-check-emulated.txt"
  exit "${PIPESTATUS[0]}"
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

timeout 420 "$node" dist/bench/gpu-check.js --addon device --size gpu --torch "$out/torch.json" --out "$out/gpu-check.json" | tee "$out/gpu-check.txt"
exit "${PIPESTATUS[0]}"
