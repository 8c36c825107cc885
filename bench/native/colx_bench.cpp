// Micro-benchmark of the sparse linear kernels on one thread: split columns (af_colx_axpy,
// codes + resident scale plane) against requantised columns (af_col_axpy) of the same type,
// Q4_0, Q4_1 and Q8_0, on the same random active set. Linked against the addon's kernel objects (build/obj) by
// bench/colx.ts, so it times exactly the code the engine runs, without Node-API overhead.
//
// Usage: colx_bench <isa> <n_out> <n_in> <keep fraction> <reps> <batch>
// Prints one JSON line: best and median us per call, and GB/s (at the best) of the bytes each
// kernel reads (codes of the active channels, plus the scale plane for split).
//
// Memory: the matrices cycle through enough copies that the working set exceeds the last-level
// cache, as in decode where every layer's weights stream from DRAM.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "activeflow/col_kernels.h"
#include "activeflow/colx_kernels.h"
#include "activeflow/kernels.h"

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Matrix {
  std::vector<uint8_t> rec;    // [n_in][record bytes]
  std::vector<uint8_t> plane;  // split only
  size_t record = 0;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 7) {
    std::fprintf(stderr, "usage: colx_bench <isa> <n_out> <n_in> <keep> <reps> <batch>\n");
    return 2;
  }
  char err[256];
  if (af_isa_init(err, sizeof err) != 0 || af_isa_set(argv[1]) != 0) {
    std::fprintf(stderr, "isa %s not available\n", argv[1]);
    return 2;
  }
  const int64_t n_out = std::atoll(argv[2]), n_in = std::atoll(argv[3]);
  const double keep = std::atof(argv[4]);
  const int reps = std::atoi(argv[5]);
  const int64_t nb = std::atoll(argv[6]);
  std::mt19937 rng(1234);
  std::normal_distribution<float> g(0.0f, 0.02f);

  // One source matrix, quantised by rows (as in the GGUF) and by columns.
  std::vector<float> w((size_t)(n_out * n_in)), col((size_t)n_out);
  for (auto& v : w) v = g(rng);
  const int types[3] = {AF_Q4_0, AF_Q4_1, AF_Q8_0};
  const int64_t bytes_needed = (int64_t)(n_out * n_in) * 2;  // generous per copy
  // ACTIVEFLOW_BENCH_HOT=1: one copy, hot in cache (kernel arithmetic only).
  const bool hot = std::getenv("ACTIVEFLOW_BENCH_HOT") != nullptr;
  const int copies = hot ? 1 : (int)std::max<int64_t>(2, (96LL << 20) / bytes_needed + 1);

  std::vector<int32_t> ch;
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  for (int64_t j = 0; j < n_in; j++) if (u(rng) < keep) ch.push_back((int32_t)j);
  const int64_t na = (int64_t)ch.size();
  std::vector<float> a((size_t)(na * nb));
  for (auto& v : a) v = g(rng) * 50;
  std::vector<float> y((size_t)(n_out * nb));
  std::vector<const void*> ptr((size_t)na);

  std::string out = "{\"isa\":\"" + std::string(argv[1]) + "\",\"n_out\":" + std::to_string(n_out) +
                    ",\"n_in\":" + std::to_string(n_in) + ",\"active\":" + std::to_string(na) +
                    ",\"batch\":" + std::to_string(nb) + ",\"copies\":" + std::to_string(copies);
  for (int type : types) {
    const size_t row_bytes = af_row_bytes(type, n_in);
    std::vector<uint8_t> rows((size_t)n_out * row_bytes);
    for (int64_t r = 0; r < n_out; r++) af_quantize_row(type, &w[(size_t)(r * n_in)], &rows[(size_t)r * row_bytes], n_in);
    std::vector<Matrix> split(copies), cols(copies);
    const size_t code = (size_t)af_colx_code_bytes(type, n_out);
    const size_t colb = af_row_bytes(type, n_out);
    for (int c = 0; c < copies; c++) {
      split[c].record = code;
      split[c].rec.resize(code * n_in);
      split[c].plane.resize((size_t)af_colx_scale_bytes(type, n_out, n_in));
      af_colx_split_codes(type, rows.data(), n_out, n_in, 0, n_in, split[c].rec.data(), (int64_t)code);
      af_colx_split_scales(type, rows.data(), n_out, n_in, split[c].plane.data());
      cols[c].record = colb;
      cols[c].rec.resize(colb * n_in);
      for (int64_t j = 0; j < n_in; j++) {
        for (int64_t r = 0; r < n_out; r++) col[(size_t)r] = w[(size_t)(r * n_in + j)];
        af_quantize_row(type, col.data(), &cols[c].rec[(size_t)j * colb], n_out);
      }
    }
    // One timed call of either kernel on copy `c` (the copies defeat the cache).
    auto once = [&](bool is_split, int c) {
      const Matrix& m = (is_split ? split : cols)[c];
      for (int64_t i = 0; i < na; i++) ptr[(size_t)i] = m.rec.data() + (size_t)ch[(size_t)i] * m.record;
      std::memset(y.data(), 0, y.size() * 4);
      const double t0 = now();
      if (is_split) {
        if (nb == 1) af_colx_axpy(type, ptr.data(), ch.data(), a.data(), na, m.plane.data(), n_out, y.data(), 0, n_out);
        else af_colx_axpy_batch(type, ptr.data(), ch.data(), a.data(), na, nb, m.plane.data(), n_out, y.data(), n_out, 0, n_out);
      } else {
        if (nb == 1) af_col_axpy(type, ptr.data(), a.data(), na, y.data(), 0, n_out);
        else af_col_axpy_batch(type, ptr.data(), a.data(), na, nb, y.data(), n_out, 0, n_out);
      }
      return now() - t0;
    };
    // The kernels alternate call by call, so drift on the host hits both alike; the first pass
    // over the copies only warms TLBs and is not counted. Best and median of the rest.
    std::vector<double> ts_all, tc_all;
    for (int rep = 0; rep < reps + copies; rep++) {
      const double a1 = once(true, rep % copies), a2 = once(false, rep % copies);
      if (rep >= copies) {
        ts_all.push_back(a1);
        tc_all.push_back(a2);
      }
    }
    std::sort(ts_all.begin(), ts_all.end());
    std::sort(tc_all.begin(), tc_all.end());
    auto run = [&](bool is_split) { return (is_split ? ts_all : tc_all)[0]; };
    const double ts_med = ts_all[ts_all.size() / 2], tc_med = tc_all[tc_all.size() / 2];
    const char* name = type == AF_Q4_0 ? "q4_0" : type == AF_Q4_1 ? "q4_1" : "q8_0";
    const double ts = run(true), tc = run(false);
    const double split_bytes = (double)na * code + (double)split[0].plane.size();
    const double col_bytes = (double)na * colb;
    char buf[1024];
    std::snprintf(buf, sizeof buf,
                  ",\"%s_split_us\":%.1f,\"%s_cols_us\":%.1f,\"%s_split_median_us\":%.1f,\"%s_cols_median_us\":%.1f,"
                  "\"%s_split_bytes\":%.0f,\"%s_cols_bytes\":%.0f,\"%s_split_gbs\":%.2f,\"%s_cols_gbs\":%.2f",
                  name, ts * 1e6, name, tc * 1e6, name, ts_med * 1e6, name, tc_med * 1e6, name, split_bytes, name, col_bytes,
                  name, split_bytes / ts / 1e9, name, col_bytes / tc / 1e9);
    out += buf;
  }
  std::printf("%s}\n", out.c_str());
  return 0;
}
