// Every default of the flash I/O path in one place. The TypeScript side plans the DRAM budget
// with these (the reader's staging is queue_depth x max_read) through the binding's
// ioDefaults(), so the numbers are never written twice.
#pragma once
#include <cstdint>

namespace activeflow {

// Device reads in flight at once; small random reads need a deep queue to reach the device's
// IOPS (bench/results/roofline-*.json).
inline constexpr unsigned kDefaultQueueDepth = 32;
// Largest single device read.
inline constexpr uint32_t kDefaultMaxRead = 256u << 10;
// Reads of max_read that can be in flight into the reader's own staging (the others land in
// place in their caller's buffers: the column store's misses always do). The staging is
// staging_slots x max_read bytes of the budget.
inline constexpr unsigned kDefaultStagingSlots = 8;
// Preload reads in flight at most, so an on-demand miss finds the device nearly idle.
inline constexpr unsigned kDefaultMaxBackground = 8;
// Merge rule when no measured read-cost curve is known: ranges this close share one read.
inline constexpr int64_t kDefaultMaxGap = 16 << 10;

}  // namespace activeflow
