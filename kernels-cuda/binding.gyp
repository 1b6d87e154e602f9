{
  # The GPU build of the CUDA backend: the .cu kernels compiled by nvcc (sm_80 and sm_90 code,
  # plus compute_90 PTX that newer GPUs compile at load), the addon and the cuBLASLt loader by
  # the host compiler, the CUDA runtime linked statically (the GPU machine needs only a driver;
  # cuBLASLt is dlopen'ed at run time). scripts/build-native.mjs runs this only where nvcc is.
  # Outputs go to kernels-cuda/build (git-ignored). libstdc++ stays dynamic: linked statically
  # it drags in arc4random and _dl_find_object (glibc 2.36 and 2.35); dynamic, the addon built
  # on Debian 12 needs glibc 2.34 and GLIBCXX 3.4.21 (Ubuntu 22.04 and later, RHEL 9).
  "variables": {
    "cuda_root": "<!(node cuda-root.cjs)"
  },
  "targets": [
    {
      "target_name": "aze_cuda",
      "sources": ["src/addon.cc", "src/cublaslt.cc", "src/elementwise.cu", "src/attention.cu", "src/gemm.cu"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "src", "<(cuda_root)/include"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-O2", "-std=c++17"],
      "libraries": ["<(cuda_root)/lib64/libcudart_static.a", "-ldl", "-lrt", "-lpthread"],
      "rules": [
        {
          "rule_name": "nvcc",
          "extension": "cu",
          "inputs": ["<(RULE_INPUT_PATH)", "src/kernels.cuh", "src/device.cuh"],
          "outputs": ["<(INTERMEDIATE_DIR)/<(RULE_INPUT_ROOT).o"],
          "action": [
            "<(cuda_root)/bin/nvcc", "-std=c++17", "-O3", "-Xcompiler", "-fPIC", "-Isrc",
            "-gencode=arch=compute_80,code=sm_80",
            "-gencode=arch=compute_90,code=sm_90",
            "-gencode=arch=compute_90,code=compute_90",
            "-c", "<(RULE_INPUT_PATH)", "-o", "<(INTERMEDIATE_DIR)/<(RULE_INPUT_ROOT).o"
          ],
          "message": "nvcc <(RULE_INPUT_PATH)",
          "process_outputs_as_sources": 1
        }
      ]
    }
  ]
}
