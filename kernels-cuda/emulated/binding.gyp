{
  # The CPU build of the CUDA backend: the same kernels (through the one-line .cc files that
  # include ../src/*.cu) and the same addon.cc, compiled by g++ with AZE_EMULATE against
  # src/emulate.h. No CUDA toolkit needed: this is how the kernels are tested on any machine.
  # No fused multiply-add (-ffp-contract=off), so results do not depend on the host CPU.
  "targets": [
    {
      "target_name": "aze_cuda_emulated",
      "sources": ["../src/addon.cc", "elementwise.cc", "attention.cc", "gemm.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "../src"],
      "defines": ["AZE_EMULATE", "NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-O2", "-std=c++17", "-pthread", "-ffp-contract=off", "-Wno-unknown-pragmas", "-Wno-sign-compare"],
      "ldflags": ["-pthread"]
    }
  ]
}
