{
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
