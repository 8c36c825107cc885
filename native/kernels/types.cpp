// Per-type traits (block shape, activation partner) and activation quantisation.
#include <math.h>
#include <string.h>

#include "activeflow/kernels.h"
#include "activeflow/quants.h"
#include "kernels/quantize_impl.h"

namespace {

struct TypeInfo {
  int64_t block_elems;  // 0 = unknown type
  size_t block_bytes;
  int vec_dot_type;     // -1 = activation-only type
};

TypeInfo info(int type) {
  switch (type) {
    case AF_F32: return {1, 4, AF_F32};
    case AF_F16: return {1, 2, AF_F32};
    case AF_BF16: return {1, 2, AF_F32};
    // The 32-element formats all take our Q8_1 (float d and d*sum): Q4_0/Q4_1 use the sum
    // to undo their offset, and one activation format serves all three.
    case AF_Q4_0: return {AF_QK, sizeof(block_q4_0), AF_Q8_1};
    case AF_Q4_1: return {AF_QK, sizeof(block_q4_1), AF_Q8_1};
    case AF_Q8_0: return {AF_QK, sizeof(block_q8_0), AF_Q8_1};
    case AF_Q8_1: return {AF_QK, sizeof(block_q8_1), -1};
    case AF_Q4_K: return {AF_QK_K, sizeof(block_q4_K), AF_Q8_K};
    case AF_Q5_K: return {AF_QK_K, sizeof(block_q5_K), AF_Q8_K};
    case AF_Q6_K: return {AF_QK_K, sizeof(block_q6_K), AF_Q8_K};
    case AF_Q8_K: return {AF_QK_K, sizeof(block_q8_K), -1};
    default: return {0, 0, -1};
  }
}

}  // namespace

extern "C" int af_type_supported(int type) { return info(type).vec_dot_type >= 0 ? 1 : 0; }
extern "C" int64_t af_type_block_elems(int type) { return info(type).block_elems; }
extern "C" size_t af_type_block_bytes(int type) { return info(type).block_bytes; }

extern "C" size_t af_row_bytes(int type, int64_t n) {
  const TypeInfo t = info(type);
  return t.block_elems ? (size_t)(n / t.block_elems) * t.block_bytes : 0;
}

extern "C" int af_vec_dot_type(int weight_type) { return info(weight_type).vec_dot_type; }

extern "C" size_t af_act_bytes(int weight_type, int64_t n) {
  const int vt = info(weight_type).vec_dot_type;
  return vt < 0 ? 0 : af_row_bytes(vt, n);
}

// af_quantize_act is in dispatch.cpp: the quantisers are per ISA.
