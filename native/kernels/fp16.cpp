// Exact IEEE half and bfloat16 conversions (round-to-nearest-even, NaN kept a NaN). Bit
// manipulation so the result does not depend on F16C being present.
#include <math.h>
#include <string.h>

#include "activeflow/kernels.h"

static inline uint32_t f2u(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}
static inline float u2f(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

extern "C" float af_fp16_to_fp32(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1F;
  const uint32_t mant = h & 0x3FF;
  if (exp == 0) {
    // Zero or subnormal: mant * 2^-24 is exact in float.
    const float v = (float)mant * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  if (exp == 31) return u2f(sign | 0x7F800000u | (mant << 13));
  return u2f(sign | ((exp + 112) << 23) | (mant << 13));
}

extern "C" uint16_t af_fp32_to_fp16(float f) {
  uint32_t x = f2u(f);
  const uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
  x &= 0x7FFFFFFFu;
  if (x > 0x7F800000u) return sign | 0x7E00 | (uint16_t)((x >> 13) & 0x3FF);  // NaN
  if (x >= 0x477FF000u) return sign | 0x7C00;  // rounds to infinity (>= 65520)
  if (x < 0x38800000u) {
    // Half subnormal range: the code is value * 2^24 rounded to nearest even (rintf under
    // the default rounding mode); 1024 correctly becomes the smallest normal.
    return sign | (uint16_t)rintf(u2f(x) * 16777216.0f);
  }
  x += 0xFFFu + ((x >> 13) & 1);
  return sign | (uint16_t)((x - (112u << 23)) >> 13);
}

extern "C" float af_bf16_to_fp32(uint16_t h) { return u2f((uint32_t)h << 16); }

extern "C" uint16_t af_fp32_to_bf16(float f) {
  uint32_t x = f2u(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((x >> 16) | 0x40);  // quiet NaN
  x += 0x7FFFu + ((x >> 16) & 1);
  return (uint16_t)(x >> 16);
}
