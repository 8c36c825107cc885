// The row-packed layout (activeflow/kernels.h, AF_PACK_ROWS) per weight type: which fields
// of a plain block are packed, in which order. Shared by the packer (pack.cpp) and the
// packed kernels (isa/simd_packed*.cpp), which read fields at af_packed_offset().
#ifndef ACTIVEFLOW_PACK_LAYOUT_H
#define ACTIVEFLOW_PACK_LAYOUT_H

#include "activeflow/kernels.h"

struct af_pack_field {
  int offset;  // in the plain block
  int bytes;
  bool half;   // an IEEE half scale, stored [row]; else bytes in 4-byte chunks [chunk][row][4]
};

struct af_pack_format {
  int block_bytes;  // plain block; the packed block of a group is AF_PACK_ROWS times this
  int nfields;
  af_pack_field f[5];
};

// Field order is the packed order: scales first, so a kernel reads them before the codes.
constexpr af_pack_format af_pack_format_of(int type) {
  switch (type) {
    case AF_Q4_0: return {18, 2, {{0, 2, true}, {2, 16, false}}};
    case AF_Q4_1: return {20, 3, {{0, 2, true}, {2, 2, true}, {4, 16, false}}};
    case AF_Q8_0: return {34, 2, {{0, 2, true}, {2, 32, false}}};
    // d, dmin, scales[12], qs[128]
    case AF_Q4_K: return {144, 4, {{0, 2, true}, {2, 2, true}, {4, 12, false}, {16, 128, false}}};
    // d, dmin, scales[12], qh[32], qs[128]
    case AF_Q5_K: return {176, 5, {{0, 2, true}, {2, 2, true}, {4, 12, false}, {16, 32, false}, {48, 128, false}}};
    // d, scales[16], ql[128], qh[64]
    case AF_Q6_K: return {210, 4, {{208, 2, true}, {192, 16, false}, {0, 128, false}, {128, 64, false}}};
    default: return {0, 0, {}};
  }
}

// Offset of field k within a packed block (AF_PACK_ROWS rows).
constexpr int af_packed_offset(int type, int k) {
  const af_pack_format f = af_pack_format_of(type);
  int off = 0;
  for (int i = 0; i < k; i++) off += f.f[i].bytes * AF_PACK_ROWS;
  return off;
}

constexpr int af_packed_block_bytes(int type) { return af_pack_format_of(type).block_bytes * AF_PACK_ROWS; }

#endif
