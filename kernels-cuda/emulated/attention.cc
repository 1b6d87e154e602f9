// The CPU build of src/attention.cu: the same source, compiled by g++ against src/emulate.h.
#include "../src/attention.cu"
