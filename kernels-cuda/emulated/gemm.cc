// The CPU build of src/gemm.cu: the same source, compiled by g++ against src/emulate.h.
#include "../src/gemm.cu"
