// The CPU build of src/elementwise.cu: the same source, compiled by g++ against src/emulate.h.
#include "../src/elementwise.cu"
