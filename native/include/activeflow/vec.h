// Picks this ISA's vector header (per-ISA sources are compiled once per ISA).
#ifndef ACTIVEFLOW_VEC_H
#define ACTIVEFLOW_VEC_H
#if defined(AF_ISA_AVX512)
#include "activeflow/vec_avx512.h"
#elif defined(AF_ISA_AVX2)
#include "activeflow/vec_avx2.h"
#endif
#endif
