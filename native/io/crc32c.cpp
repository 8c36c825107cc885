// CRC-32C: a slicing-by-8 table path and an SSE4.2 crc32-instruction path, picked at runtime.
// The addon's baseline is plain x86-64, so the hardware path carries its own target attribute.
#include "io/crc32c.h"

#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define AF_CRC_X86 1
#endif

namespace activeflow {

namespace {

constexpr uint32_t kPoly = 0x82F63B78u;  // reflected Castagnoli

struct Tables {
  uint32_t t[8][256];  // t[k][b]: CRC of byte b followed by k zero bytes
  Tables() {
    for (uint32_t b = 0; b < 256; b++) {
      uint32_t c = b;
      for (int i = 0; i < 8; i++) c = (c >> 1) ^ (kPoly & (0u - (c & 1u)));
      t[0][b] = c;
    }
    for (uint32_t b = 0; b < 256; b++) {
      for (int k = 1; k < 8; k++) t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xFF];
    }
  }
};

const Tables& GetTables() {
  static const Tables tables;
  return tables;
}

#ifdef AF_CRC_X86
__attribute__((target("sse4.2"))) uint32_t HwImpl(const uint8_t* p, size_t n, uint32_t crc) {
  uint64_t c = crc;
  while (n > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0) {
    c = _mm_crc32_u8(static_cast<uint32_t>(c), *p++);
    n--;
  }
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c = _mm_crc32_u64(c, v);
    p += 8;
    n -= 8;
  }
  while (n > 0) {
    c = _mm_crc32_u8(static_cast<uint32_t>(c), *p++);
    n--;
  }
  return static_cast<uint32_t>(c);
}
#endif

using Impl = uint32_t (*)(const void*, size_t, uint32_t);

Impl Choose() {
  const char* force = std::getenv("ACTIVEFLOW_CRC32C");
  if (force && std::strcmp(force, "scalar") == 0) return Crc32cScalar;
  return Crc32cHasHw() ? Crc32cHw : Crc32cScalar;
}

Impl Chosen() {
  static const Impl impl = Choose();
  return impl;
}

}  // namespace

uint32_t Crc32cScalar(const void* data, size_t n, uint32_t seed) {
  const Tables& T = GetTables();
  const uint8_t* p = static_cast<const uint8_t*>(data);
  uint32_t c = ~seed;
  while (n >= 8) {
    // Little-endian: the first four bytes fold into the running CRC.
    const uint32_t lo = c ^ (uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24);
    c = T.t[7][lo & 0xFF] ^ T.t[6][(lo >> 8) & 0xFF] ^ T.t[5][(lo >> 16) & 0xFF] ^ T.t[4][lo >> 24] ^
        T.t[3][p[4]] ^ T.t[2][p[5]] ^ T.t[1][p[6]] ^ T.t[0][p[7]];
    p += 8;
    n -= 8;
  }
  while (n-- > 0) c = (c >> 8) ^ T.t[0][(c ^ *p++) & 0xFF];
  return ~c;
}

bool Crc32cHasHw() {
#ifdef AF_CRC_X86
  static const bool has = __builtin_cpu_supports("sse4.2");
  return has;
#else
  return false;
#endif
}

uint32_t Crc32cHw(const void* data, size_t n, uint32_t seed) {
#ifdef AF_CRC_X86
  return ~HwImpl(static_cast<const uint8_t*>(data), n, ~seed);
#else
  return Crc32cScalar(data, n, seed);
#endif
}

uint32_t Crc32c(const void* data, size_t n, uint32_t seed) { return Chosen()(data, n, seed); }

const char* Crc32cPath() { return Chosen() == Crc32cScalar ? "scalar" : "sse42"; }

}  // namespace activeflow
