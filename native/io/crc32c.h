// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of the flash store's
// 4 KiB pages. Chaining: Crc32c(b, n2, Crc32c(a, n1)) == Crc32c(a||b, n1 + n2).
#pragma once
#include <cstddef>
#include <cstdint>

namespace activeflow {

// The path chosen once at first use: "sse42" when the CPU has the crc32 instruction,
// otherwise "scalar"; ACTIVEFLOW_CRC32C=scalar in the environment forces the table path.
uint32_t Crc32c(const void* data, size_t n, uint32_t seed = 0);
const char* Crc32cPath();

// Both paths, for tests. Crc32cHw must only be called when Crc32cHasHw() is true.
uint32_t Crc32cScalar(const void* data, size_t n, uint32_t seed = 0);
uint32_t Crc32cHw(const void* data, size_t n, uint32_t seed = 0);
bool Crc32cHasHw();

}  // namespace activeflow
