// Sizes of split columns and the conversion of a source matrix into codes and a scale plane
// (activeflow/colx_kernels.h). Plain C++, compiled once: it runs in `activeflow convert`.
#include <string.h>

#include "activeflow/colx_kernels.h"
#include "activeflow/kernels.h"
#include "activeflow/quants.h"

namespace {

// Bytes of one source block and where its codes start.
struct Src {
  int64_t block_bytes;
  int64_t codes_at;
  int params;  // halves of parameters per block: d, or d and m
  int bits;
};

bool source_of(int type, Src* s) {
  switch (type) {
    case AF_Q4_0: *s = {sizeof(block_q4_0), 2, 1, 4}; return true;
    case AF_Q4_1: *s = {sizeof(block_q4_1), 4, 2, 4}; return true;
    case AF_Q8_0: *s = {sizeof(block_q8_0), 2, 1, 8}; return true;
    default: return false;
  }
}

bool shape_ok(int type, int64_t n_out, int64_t n_in) {
  return af_colx_code_bytes(type, n_out) > 0 && n_in > 0 && n_in % AF_QK == 0;
}

// Code k (0..31) of a source block as its stored bits: a nibble for Q4, a byte for Q8_0.
inline uint8_t code_of(const uint8_t* blk, const Src& s, int k) {
  const uint8_t* qs = blk + s.codes_at;
  if (s.bits == 8) return qs[k];
  return k < 16 ? (uint8_t)(qs[k] & 15) : (uint8_t)(qs[k - 16] >> 4);
}

}  // namespace

extern "C" int64_t af_colx_code_bytes(int type, int64_t n_out) {
  Src s;
  if (!source_of(type, &s) || n_out <= 0 || n_out % AF_COLX_ROWS != 0) return -1;
  return n_out * s.bits / 8;
}

extern "C" int64_t af_colx_scale_bytes(int type, int64_t n_out, int64_t n_in) {
  Src s;
  if (!source_of(type, &s) || !shape_ok(type, n_out, n_in)) return -1;
  return n_in / AF_QK * n_out * s.params * 2;
}

extern "C" int af_colx_split_scales(int type, const void* rows, int64_t n_out, int64_t n_in, void* plane) {
  Src s;
  if (!source_of(type, &s) || !shape_ok(type, n_out, n_in)) return -1;
  const int64_t nblk = n_in / AF_QK, row_bytes = nblk * s.block_bytes;
  uint16_t* out = (uint16_t*)plane;
  for (int64_t r = 0; r < n_out; r++) {
    const uint8_t* row = (const uint8_t*)rows + r * row_bytes;
    for (int64_t b = 0; b < nblk; b++) {
      const uint8_t* blk = row + b * s.block_bytes;
      for (int k = 0; k < s.params; k++) memcpy(out + (b * s.params + k) * n_out + r, blk + 2 * k, 2);
    }
  }
  return 0;
}

extern "C" int af_colx_split_codes(int type, const void* rows, int64_t n_out, int64_t n_in, int64_t j0, int64_t nj,
                                   void* out, int64_t stride) {
  Src s;
  if (!source_of(type, &s) || !shape_ok(type, n_out, n_in) || j0 < 0 || nj < 0 || j0 + nj > n_in) return -1;
  const int64_t row_bytes = n_in / AF_QK * s.block_bytes;
  uint8_t* dst = (uint8_t*)out;
  // Row-major over the source, so a row is read once and the nj channels' writes for it land
  // on the same few bytes of each channel (cache-friendly for bands of hundreds of channels).
  auto code = [&](int64_t r, int64_t j) {
    return code_of((const uint8_t*)rows + r * row_bytes + j / AF_QK * s.block_bytes, s, (int)(j % AF_QK));
  };
  if (s.bits == 8) {
    for (int64_t r = 0; r < n_out; r++) {
      for (int64_t k = 0; k < nj; k++) dst[k * stride + r] = code(r, j0 + k);
    }
    return 0;
  }
  // Chunk c of 16 bytes: byte t = row 32c + t (low nibble) | row 32c + 16 + t (high).
  for (int64_t c = 0; c < n_out / 32; c++) {
    for (int t = 0; t < 16; t++) {
      for (int64_t k = 0; k < nj; k++) {
        dst[k * stride + 16 * c + t] = (uint8_t)(code(32 * c + t, j0 + k) | code(32 * c + 16 + t, j0 + k) << 4);
      }
    }
  }
  return 0;
}
