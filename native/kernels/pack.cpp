// Packing to and from the row-packed layout (pack_layout.h), and the packed matvec/matmul
// entry points' handling of partial groups and the plain tail rows.
#include <string.h>


#include "activeflow/kernels.h"
#include "kernels/pack_layout.h"

namespace {

// Plain <-> packed for one group: plain row r at plain + r * plain_stride (a stride of 0
// with only_row >= 0: just that row), the packed group contiguous at `packed`. Copies go
// by 4-byte chunk (2 bytes for a half), so packing a 7B model takes about a second.
void convert_group(int type, uint8_t* plain, size_t plain_stride, size_t row_bytes, uint8_t* packed, bool to_packed,
                   int only_row) {
  const af_pack_format fmt = af_pack_format_of(type);
  const int64_t nblk = (int64_t)(row_bytes / fmt.block_bytes);
  const int pb = fmt.block_bytes * AF_PACK_ROWS;
  const int r0 = only_row >= 0 ? only_row : 0, r1 = only_row >= 0 ? only_row + 1 : AF_PACK_ROWS;
  for (int64_t i = 0; i < nblk; i++) {
    uint8_t* pk = packed + i * pb;
    for (int k = 0, off = 0; k < fmt.nfields; off += fmt.f[k].bytes * AF_PACK_ROWS, k++) {
      const af_pack_field& f = fmt.f[k];
      for (int r = r0; r < r1; r++) {
        uint8_t* row = plain + (r - r0) * plain_stride + i * fmt.block_bytes + f.offset;
        if (f.half) {
          uint8_t* p = pk + off + 2 * r;
          if (to_packed) memcpy(p, row, 2);
          else memcpy(row, p, 2);
          continue;
        }
        for (int c = 0; c < f.bytes / 4; c++) {
          uint8_t* p = pk + off + (c * AF_PACK_ROWS + r) * 4;
          if (to_packed) memcpy(p, row + 4 * c, 4);
          else memcpy(row + 4 * c, p, 4);
        }
      }
    }
  }
}

}  // namespace

extern "C" int af_pack_supported(int type) { return af_pack_format_of(type).block_bytes > 0 ? 1 : 0; }

extern "C" void af_pack_rows(int type, const void* src, void* dst, size_t row_bytes, int64_t rows) {
  const size_t group = row_bytes * AF_PACK_ROWS;
  const int64_t whole = af_pack_supported(type) ? rows / AF_PACK_ROWS : 0;
  for (int64_t g = 0; g < whole; g++) {
    convert_group(type, (uint8_t*)src + g * group, row_bytes, row_bytes, (uint8_t*)dst + g * group, true, -1);
  }
  memcpy((uint8_t*)dst + whole * group, (const uint8_t*)src + whole * group, (size_t)(rows - whole * AF_PACK_ROWS) * row_bytes);
}

extern "C" void af_unpack_row(int type, const void* w, size_t row_bytes, int64_t rows, int64_t r, void* out) {
  const uint8_t* base = (const uint8_t*)w;
  if (!af_pack_supported(type) || r >= rows / AF_PACK_ROWS * AF_PACK_ROWS) {
    memcpy(out, base + r * row_bytes, row_bytes);
    return;
  }
  uint8_t* group = (uint8_t*)base + (r / AF_PACK_ROWS) * AF_PACK_ROWS * row_bytes;
  convert_group(type, (uint8_t*)out, 0, row_bytes, group, false, (int)(r % AF_PACK_ROWS));
}
