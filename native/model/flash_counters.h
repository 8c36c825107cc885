// The column store's counters, declared once: this table generates the C++ struct
// (ColumnStats), the binding's flashStats() fields and, through scripts/gen-counters.mjs, the
// TypeScript type (src/backend/flashCounters.ts; a test checks it is current).
// AF_COUNTER(field, jsName, type, meaning): type is uint64_t (counts, bytes) or double (seconds).
// AF_SITE_COUNTER(field, jsName, meaning): uint64_t per site (attn_in, attn_out, ffn_in, ffn_out).
#pragma once

#define AF_FLASH_SITE_COUNTERS(AF_SITE_COUNTER)                                                          \
  AF_SITE_COUNTER(site_lookups, "siteLookups", "active channels looked up, per site")                    \
  AF_SITE_COUNTER(site_hits, "siteHits", "active channels found in the hot cache, per site")

#define AF_FLASH_COUNTERS(AF_COUNTER)                                                                      \
  AF_COUNTER(lookups, "lookups", uint64_t, "active channels looked up")                                   \
  AF_COUNTER(hits, "hits", uint64_t, "active channels found in the hot cache")                            \
  AF_COUNTER(preload_hits, "preloadHits", uint64_t, "active channels found in the group's preload buffer") \
  AF_COUNTER(demand_loads, "demandLoads", uint64_t, "active channels read on demand")                     \
  AF_COUNTER(preload_records, "preloadRecords", uint64_t, "records preloaded")                            \
  AF_COUNTER(reads_withdrawn, "readsWithdrawn", uint64_t, "prefetch / read-ahead reads withdrawn unissued at their visit") \
  AF_COUNTER(bytes_read, "bytesRead", uint64_t, "bytes the device returned")                              \
  AF_COUNTER(bytes_requested, "bytesRequested", uint64_t, "record bytes asked for")                      \
  AF_COUNTER(device_reads, "deviceReads", uint64_t, "device reads issued")                                \
  AF_COUNTER(preload_bytes_read, "preloadBytesRead", uint64_t, "bytes the device returned for preloads")  \
  AF_COUNTER(demand_bytes_read, "demandBytesRead", uint64_t, "bytes the device returned for on-demand loads") \
  AF_COUNTER(fill_bytes_read, "fillBytesRead", uint64_t, "bytes read to fill a pinned cache prefix")      \
  AF_COUNTER(active_bytes, "activeBytes", uint64_t, "record bytes of active channels (what compute used)") \
  AF_COUNTER(active_preload_bytes, "activePreloadBytes", uint64_t, "of which arrived by preload")         \
  AF_COUNTER(active_demand_bytes, "activeDemandBytes", uint64_t, "of which arrived on demand")            \
  AF_COUNTER(io_wait_s, "ioWaitSeconds", double, "compute blocked on reads (preload, on demand, fills)")  \
  AF_COUNTER(compute_s, "columnComputeSeconds", double, "time in the column kernels")                     \
  AF_COUNTER(preload_io_s, "preloadIoSeconds", double, "loader time of preload batches (submit to done)") \
  AF_COUNTER(preload_wait_s, "preloadWaitSeconds", double, "compute blocked waiting for a preload")       \
  AF_COUNTER(demand_wait_s, "demandWaitSeconds", double, "compute blocked on on-demand reads after computing what had landed") \
  AF_COUNTER(demand_io_s, "demandIoSeconds", double, "loader time of on-demand batches (submit to last landing)")
