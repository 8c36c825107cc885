// Model construction: maps the file, binds tensors by their GGUF names, checks shapes
// against the config, allocates the KV cache and scratch.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <unordered_map>

#include "activeflow/colx_kernels.h"
#include "activeflow/kernels.h"
#include "model/model.h"

namespace activeflow {

namespace {

std::string Shape(const std::vector<int64_t>& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); i++) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + "]";
}

}  // namespace

Model::Model(const std::string& path, const ModelConfig& cfg, const std::vector<TensorSpec>& tensors,
             int threads, std::unique_ptr<FlashSetup> flash)
    : cfg_(cfg), flash_(std::move(flash)) {
  if (cfg_.n_layer <= 0 || cfg_.n_embd <= 0 || cfg_.n_head <= 0 || cfg_.n_head_kv <= 0 ||
      cfg_.head_dim <= 0 || cfg_.head_dim > 512 || cfg_.n_vocab <= 0 || cfg_.n_ff <= 0 || cfg_.n_ctx <= 0 ||
      cfg_.n_head % cfg_.n_head_kv != 0 || cfg_.n_rot <= 0 || cfg_.n_rot > cfg_.head_dim ||
      cfg_.n_rot % 2 != 0 || cfg_.n_swa < 0 ||
      (!cfg_.swa_layers.empty() && static_cast<int>(cfg_.swa_layers.size()) != cfg_.n_layer)) {
    throw ModelError("MODEL_UNSUPPORTED", path + ": inconsistent model config");
  }
  const MoeConfig& mc = cfg_.moe;
  if (mc.n_expert != 0 && (mc.n_expert < 1 || mc.n_expert > kMaxExperts || mc.n_expert_used < 1 || mc.n_expert_used > mc.n_expert ||
                           mc.n_ff_exp < 1 || mc.n_ff_shexp < 0)) {
    throw ModelError("MODEL_UNSUPPORTED", path + ": inconsistent mixture-of-experts config (" + std::to_string(mc.n_expert_used) +
                                              " of " + std::to_string(mc.n_expert) + " experts of width " +
                                              std::to_string(mc.n_ff_exp) + ")");
  }
  if (mc.n_expert != 0 && flash_) {
    const int per = mc.n_expert + (mc.n_ff_shexp > 0 ? 1 : 0);
    if (flash_->experts_per_layer != per || flash_->experts.size() != static_cast<size_t>(cfg_.n_layer) * per) {
      throw ModelError("MODEL_BAD_SHAPE", path + ": the flash file holds " + std::to_string(flash_->experts.size()) + " experts, the model needs " +
                                              std::to_string(cfg_.n_layer) + " layers x " + std::to_string(per));
    }
    if (flash_->group_size != 1) throw ModelError("MODEL_UNSUPPORTED", path + ": mixture-of-experts flash files need layer groups of 1");
    // The FFN sites have no extents (the experts replace them): empty ones keep the column
    // store's [group][site] indexing; the forward pass never visits them.
    std::vector<FlashExtent> padded;
    for (auto& e : flash_->extents) {
      padded.push_back(std::move(e));
      if (padded.back().site == kAttnOut) {
        for (int site : {kFfnIn, kFfnOut}) {
          FlashExtent f;
          f.group = padded.back().group;
          f.site = site;
          f.first_layer = padded.back().first_layer;
          f.layers = padded.back().layers;
          f.record_bytes = 1;  // n_in = 0: no records, no cache share
          padded.push_back(std::move(f));
        }
      }
    }
    flash_->extents = std::move(padded);
  }
  if (flash_) {
    flash_file_ = std::make_shared<FlashFile>(path, flash_->direct);
    file_bytes_ = flash_file_->size();
    ReaderOptions ro;
    ro.queue_depth = flash_->queue_depth;
    ro.max_read = flash_->max_read;
    ro.max_background = flash_->max_background;
    // Experiments: AF_IO_BACKGROUND overrides the preload in-flight cap.
    if (const char* bg = std::getenv("AF_IO_BACKGROUND")) ro.max_background = static_cast<unsigned>(std::atoi(bg));
    ro.max_gap = flash_->max_gap;
    if (!flash_->read_cost.empty()) read_cost_ = ReadCost(flash_->read_cost);
    // A fixed merge gap, when given, replaces the curve for merging (not for the cache split).
    if (!flash_->fixed_gap) ro.cost = read_cost_;
    reader_ = std::make_shared<Reader>(flash_file_, ro);
    if (!flash_->crcs.empty()) {
      sums_.crcs = flash_->crcs.data();
      sums_.base = flash_->crc_base;
      sums_.pages = flash_->crcs.size();
    }
    load_resident(tensors);
    bind_scale_planes(tensors);
  } else {
    file_ = std::make_unique<MappedFile>(path);
    file_bytes_ = file_->size();
  }
  bind_weights(tensors);
  if (flash_) {
    if (static_cast<int>(flash_->extents.size()) != ((cfg_.n_layer + flash_->group_size - 1) / flash_->group_size) * kSites) {
      throw ModelError("MODEL_BAD_SHAPE", path + ": extent count does not match the layer groups");
    }
    store_ = std::make_unique<ColumnStore>(flash_->extents, flash_->group_size, reader_,
                                           flash_->verify && sums_.crcs ? &sums_ : nullptr, flash_->cache_bytes,
                                           flash_->cache_policy, read_cost_.empty() ? nullptr : &read_cost_);
    if (!w_.output.data) head_staging_ = AlignedBuffer(std::max(flash_->head_staging_bytes, w_.output.row_bytes));
    if (!w_.tok_embd.data) row_staging_ = AlignedBuffer(w_.tok_embd.row_bytes);
    store_->set_preload_bytes(flash_->preload_bytes);
    store_->set_read_ahead(flash_->read_ahead);
    if (mc.n_expert > 0) {
      experts_ = std::make_unique<ExpertStore>(std::move(flash_->experts), flash_->experts_per_layer,
                                               mc.n_expert_used + (mc.n_ff_shexp > 0 ? 1 : 0), reader_,
                                               flash_->verify && sums_.crcs ? &sums_ : nullptr, flash_->expert_pool_bytes);
    }
  }

  const int kv_dim = cfg_.n_head_kv * cfg_.head_dim;
  kv_elems_ = static_cast<size_t>(cfg_.n_layer) * cfg_.n_ctx * kv_dim;
  kv_k_.reset(static_cast<uint16_t*>(std::calloc(kv_elems_, sizeof(uint16_t))));
  kv_v_.reset(static_cast<uint16_t*>(std::calloc(kv_elems_, sizeof(uint16_t))));
  if (!kv_k_ || !kv_v_) {
    throw ModelError("NATIVE", "cannot allocate the KV cache (" +
                                   std::to_string(kv_elems_ * 4 / (1 << 20)) + " MiB)");
  }

  // Rotation frequency per pair; llama3 files carry per-pair divisors in rope_freqs. Linear
  // rope scaling multiplies positions, folded in here.
  inv_freq_.resize(cfg_.n_rot / 2);
  inv_freq_swa_.resize(cfg_.n_rot / 2);
  for (int i = 0; i < cfg_.n_rot / 2; i++) {
    double f = std::pow(static_cast<double>(cfg_.rope_theta), -2.0 * i / cfg_.n_rot);
    if (w_.rope_freqs.present()) f /= reinterpret_cast<const float*>(w_.rope_freqs.data)[i];
    inv_freq_[i] = static_cast<float>(f * cfg_.rope_scale);
    inv_freq_swa_[i] = static_cast<float>(std::pow(static_cast<double>(cfg_.rope_theta_swa), -2.0 * i / cfg_.n_rot) * cfg_.rope_scale_swa);
  }

  const int B = cfg_.n_batch;
  const int q_dim = cfg_.n_head * cfg_.head_dim;
  const int wide = std::max({cfg_.n_embd, cfg_.n_ff, q_dim});
  s_.x.assign(static_cast<size_t>(B) * cfg_.n_embd, 0.0f);
  s_.xn.assign(static_cast<size_t>(B) * wide, 0.0f);
  s_.q.assign(static_cast<size_t>(B) * q_dim, 0.0f);
  s_.k.assign(static_cast<size_t>(B) * kv_dim, 0.0f);
  s_.v.assign(static_cast<size_t>(B) * kv_dim, 0.0f);
  s_.attn.assign(static_cast<size_t>(B) * q_dim, 0.0f);
  s_.gate.assign(static_cast<size_t>(B) * cfg_.n_ff, 0.0f);
  s_.up.assign(static_cast<size_t>(B) * cfg_.n_ff, 0.0f);
  s_.logits.assign(cfg_.n_vocab, 0.0f);
  size_t act = 0;
  auto widen = [&](const Tensor& t) {
    if (t.present()) act = std::max(act, af_act_bytes(t.type, t.ne0));
  };
  widen(w_.output);
  for (const auto& l : w_.layers) {
    for (const Tensor* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.gate, &l.up, &l.down}) widen(*t);
  }
  s_.xq.assign(static_cast<size_t>(B) * act + 64, 0);
  if (store_) {
    linears_ = store_.get();
  } else {
    dense_ = std::make_unique<DenseLinear>(w_.layers, s_.xq.data());
    linears_ = dense_.get();
  }
  if (cfg_.moe.n_expert > 0) {
    moe_ = std::make_unique<MoeFfn>(cfg_.moe, cfg_.n_embd, cfg_.n_batch, w_.layers);
    if (experts_) moe_->set_store(experts_.get(), cfg_.rms_eps, flash_->pregate);
  }
  std::vector<const float*> attn_norm, ffn_norm;
  for (const auto& l : w_.layers) {
    attn_norm.push_back(reinterpret_cast<const float*>(l.attn_norm.data));
    ffn_norm.push_back(reinterpret_cast<const float*>(l.ffn_norm.data));
  }
  predictor_.configure(cfg_.n_layer, cfg_.n_embd, q_dim, cfg_.n_ff, cfg_.rms_eps, std::move(attn_norm), std::move(ffn_norm), &thresholds_);
  const int64_t widths[kSites] = {cfg_.n_embd, q_dim, cfg_.n_embd, cfg_.n_ff};
  act_stats_.configure(cfg_.n_layer, widths);
  for (int s = 0; s < kSites; s++) {
    site_offset_[s] = layer_channels_;
    layer_channels_ += static_cast<size_t>(widths[s]);
  }
  set_threads(threads);
  if (!flash_) pack_weights();
}

// The packed kernels (activeflow/kernels.h) read AF_PACK_ROWS rows per instruction, so the
// dense model's linear weights are repacked once at load into anonymous memory, and the
// file's pages of those tensors are dropped from this process: RSS stays about the file
// size (the page cache may still hold the file, as for any read). ACTIVEFLOW_PACK=0 keeps
// the file's layout (the plain kernels), for comparisons.
void Model::pack_weights() {
  if (const char* env = std::getenv("ACTIVEFLOW_PACK"); env && std::strcmp(env, "0") == 0) return;
  std::vector<Tensor*> ts;
  size_t total = 0;
  auto want = [&](Tensor& t) {
    if (t.data && !t.packed && af_pack_supported(t.type) && t.ne1 >= AF_PACK_ROWS) {
      t.packed = true;
      ts.push_back(&t);
      total += (t.row_bytes * t.ne1 + 63) / 64 * 64;
    }
  };
  for (auto& l : w_.layers) {
    for (Tensor* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.gate, &l.up, &l.down}) want(*t);
    // Experts: each slice packed on its own, so it stays a self-contained matrix.
    for (auto* v : {&l.moe.gate, &l.moe.up, &l.moe.down}) {
      for (Tensor& t : *v) want(t);
    }
    for (Tensor* t : {&l.moe.router, &l.moe.shexp_gate, &l.moe.shexp_up, &l.moe.shexp_down}) want(*t);
  }
  want(w_.output);
  if (ts.empty()) return;
  packed_ = std::make_unique<HugeBuffer>(total);
  std::vector<uint8_t*> dst;
  for (size_t i = 0, at = 0; i < ts.size(); at += (ts[i]->row_bytes * ts[i]->ne1 + 63) / 64 * 64, i++) {
    dst.push_back(packed_->data() + at);
  }
  // Units of about 8 MB (whole groups), so both threads stay busy to the end.
  std::vector<std::pair<size_t, int64_t>> units;  // tensor, first group
  std::vector<int64_t> per(ts.size());
  for (size_t i = 0; i < ts.size(); i++) {
    const int64_t groups = (ts[i]->ne1 + AF_PACK_ROWS - 1) / AF_PACK_ROWS;
    per[i] = std::max<int64_t>(1, (int64_t{8} << 20) / static_cast<int64_t>(ts[i]->row_bytes * AF_PACK_ROWS));
    for (int64_t g = 0; g < groups; g += per[i]) units.push_back({i, g});
  }
  pool_->for_units(static_cast<int64_t>(units.size()), [&](int64_t u, int) {
    const size_t i = units[u].first;
    const Tensor& t = *ts[i];
    const int64_t r0 = units[u].second * AF_PACK_ROWS, r1 = std::min(t.ne1, r0 + per[i] * AF_PACK_ROWS);
    af_pack_rows(t.type, t.data + r0 * t.row_bytes, dst[i] + r0 * t.row_bytes, t.row_bytes, r1 - r0);
    // Released unit by unit, so the file's pages and their packed copy are never both
    // resident for more than a unit.
    file_->release(static_cast<size_t>(t.data - file_->data()) + r0 * t.row_bytes, (r1 - r0) * t.row_bytes);
  });
  const bool tied = w_.output.data == w_.tok_embd.data;
  for (size_t i = 0; i < ts.size(); i++) {
    // Pages straddling two units were kept by both: drop them now.
    file_->release(static_cast<size_t>(ts[i]->data - file_->data()), ts[i]->row_bytes * ts[i]->ne1);
    ts[i]->data = dst[i];
  }
  if (tied) {
    // Tied embeddings: the table is the packed head; token rows are unpacked one at a time.
    w_.tok_embd.data = w_.output.data;
    w_.tok_embd.packed = w_.output.packed;
    if (w_.tok_embd.packed) row_staging_ = AlignedBuffer(w_.tok_embd.row_bytes);
  }
}

void Model::set_threads(int threads) {
  threads = std::max(1, threads);
  if (pool_ && pool_->size() == threads) return;
  pool_ = std::make_unique<ThreadPool>(threads);
  s_.scores.assign(static_cast<size_t>(threads) * cfg_.n_ctx, 0.0f);
  s_.vrows.assign(static_cast<size_t>(threads) * cfg_.n_ctx, nullptr);
}

void Model::bind_weights(const std::vector<TensorSpec>& tensors) {
  std::unordered_map<std::string, const TensorSpec*> by_name;
  for (const auto& t : tensors) by_name[t.name] = &t;
  const size_t file_size = file_bytes_;
  const bool flash = flash_ != nullptr;

  // Binds `name` with the expected dims; ne0/ne1 of a missing optional tensor stay empty.
  auto bind = [&](const std::string& name, std::vector<int64_t> want, bool required) -> Tensor {
    auto it = by_name.find(name);
    Tensor t;
    if (it == by_name.end()) {
      if (required) throw ModelError("MODEL_MISSING_TENSOR", "model has no tensor " + name);
      return t;
    }
    const TensorSpec& s = *it->second;
    std::vector<int64_t> dims = s.dims;
    while (dims.size() > want.size() && dims.back() == 1) dims.pop_back();
    while (dims.size() < want.size()) dims.push_back(1);
    if (dims != want) {
      throw ModelError("MODEL_BAD_SHAPE", "tensor " + name + " has shape " + Shape(s.dims) +
                                              ", expected " + Shape(want));
    }
    if (!af_type_supported(s.type)) {
      throw ModelError("GGUF_UNKNOWN_TYPE",
                       "tensor " + name + " has unsupported type " + std::to_string(s.type));
    }
    t.type = s.type;
    t.ne0 = dims[0];
    t.ne1 = dims.size() > 1 ? dims[1] : 1;
    if (t.ne0 % af_type_block_elems(t.type) != 0) {
      throw ModelError("MODEL_BAD_SHAPE", "tensor " + name + ": row length " + std::to_string(t.ne0) +
                                              " is not a multiple of its block size");
    }
    t.row_bytes = af_row_bytes(t.type, t.ne0);
    const uint64_t bytes = static_cast<uint64_t>(t.row_bytes) * t.ne1;
    if (s.offset > file_size || bytes > file_size - s.offset) {
      throw ModelError("GGUF_BAD_TENSOR", "tensor " + name + " at offset " + std::to_string(s.offset) +
                                              " runs past the end of the file (" +
                                              std::to_string(file_size) + " bytes)");
    }
    t.file_offset = s.offset;
    if (!flash) {
      t.data = file_->data() + s.offset;
    } else {
      auto r = resident_at_.find(name);
      t.data = r == resident_at_.end() ? nullptr : r->second;
    }
    return t;
  };
  auto bind_f32 = [&](const std::string& name, int64_t n, bool required) -> Tensor {
    Tensor t = bind(name, {n}, required);
    if (t.present() && t.type != AF_F32) {
      throw ModelError("MODEL_UNSUPPORTED", "tensor " + name + " must be F32");
    }
    return t;
  };

  // A 3-D expert tensor [n_in, n_out, n_expert] as one 2-D view per expert slice.
  auto bind_slices = [&](const std::string& name, int64_t n_in, int64_t n_out) -> std::vector<Tensor> {
    const int64_t ne = cfg_.moe.n_expert;
    Tensor all = bind(name, {n_in, n_out, ne}, true);
    const uint64_t slice = static_cast<uint64_t>(all.row_bytes) * n_out;
    if (slice * ne > file_size - all.file_offset) {
      throw ModelError("GGUF_BAD_TENSOR", "tensor " + name + " at offset " + std::to_string(all.file_offset) +
                                              " runs past the end of the file (" + std::to_string(file_size) + " bytes)");
    }
    std::vector<Tensor> out(static_cast<size_t>(ne), all);
    for (int64_t e = 0; e < ne; e++) {
      out[e].file_offset = all.file_offset + e * slice;
      out[e].data = all.data + e * slice;
    }
    return out;
  };
  auto bind_experts = [&](const std::string& p, ExpertWeights& m) {
    const int64_t E = cfg_.n_embd, FE = cfg_.moe.n_ff_exp, SH = cfg_.moe.n_ff_shexp;
    m.router = bind(p + "ffn_gate_inp.weight", {E, cfg_.moe.n_expert}, true);
    if (flash) {
      // The experts live in their own extents (model/expert_store.h); the routers stay.
      if (SH > 0) m.shexp_gate_inp = bind_f32(p + "ffn_gate_inp_shexp.weight", E, true);
      return;
    }
    m.gate = bind_slices(p + "ffn_gate_exps.weight", E, FE);
    m.up = bind_slices(p + "ffn_up_exps.weight", E, FE);
    m.down = bind_slices(p + "ffn_down_exps.weight", FE, E);
    if (SH > 0) {
      m.shexp_gate_inp = bind_f32(p + "ffn_gate_inp_shexp.weight", E, true);
      m.shexp_gate = bind(p + "ffn_gate_shexp.weight", {E, SH}, true);
      m.shexp_up = bind(p + "ffn_up_shexp.weight", {E, SH}, true);
      m.shexp_down = bind(p + "ffn_down_shexp.weight", {SH, E}, true);
    }
  };

  const int64_t E = cfg_.n_embd, F = cfg_.n_ff, V = cfg_.n_vocab;
  const int64_t Q = static_cast<int64_t>(cfg_.n_head) * cfg_.head_dim;
  const int64_t KV = static_cast<int64_t>(cfg_.n_head_kv) * cfg_.head_dim;
  w_.tok_embd = bind("token_embd.weight", {E, V}, true);
  w_.output_norm = bind_f32("output_norm.weight", E, true);
  w_.output = bind("output.weight", {E, V}, false);
  if (!w_.output.present()) {
    w_.output = w_.tok_embd;  // tied embeddings
    if (flash && flash_->head_resident) w_.output.data = resident_at_.at("token_embd.weight");
  }
  w_.rope_freqs = bind_f32("rope_freqs.weight", cfg_.n_rot / 2, false);
  w_.layers.resize(cfg_.n_layer);
  for (int i = 0; i < cfg_.n_layer; i++) {
    const std::string p = "blk." + std::to_string(i) + ".";
    LayerWeights& l = w_.layers[i];
    l.attn_norm = bind_f32(p + "attn_norm.weight", E, true);
    l.wq = bind(p + "attn_q.weight", {E, Q}, !flash);
    l.wk = bind(p + "attn_k.weight", {E, KV}, !flash);
    l.wv = bind(p + "attn_v.weight", {E, KV}, !flash);
    l.wo = bind(p + "attn_output.weight", {Q, E}, !flash);
    l.attn_post_norm = bind_f32(p + "post_attention_norm.weight", E, cfg_.post_norms);
    l.bq = bind_f32(p + "attn_q.bias", Q, false);
    l.bk = bind_f32(p + "attn_k.bias", KV, false);
    l.bv = bind_f32(p + "attn_v.bias", KV, false);
    l.q_norm = bind_f32(p + "attn_q_norm.weight", cfg_.head_dim, false);
    l.k_norm = bind_f32(p + "attn_k_norm.weight", cfg_.head_dim, false);
    l.ffn_norm = bind_f32(p + "ffn_norm.weight", E, true);
    if (cfg_.moe.n_expert > 0) {
      bind_experts(p, l.moe);
      continue;
    }
    l.gate = bind(p + "ffn_gate.weight", {E, F}, !flash);
    l.up = bind(p + "ffn_up.weight", {E, F}, !flash);
    l.down = bind(p + "ffn_down.weight", {F, E}, !flash);
    l.ffn_post_norm = bind_f32(p + "post_ffw_norm.weight", E, cfg_.post_norms);
  }
}

// Flash mode: copies the tensors that live in DRAM (norms, biases, and by policy the
// embedding and the output head) out of the file with one batched read.
void Model::load_resident(const std::vector<TensorSpec>& tensors) {
  const bool tied = std::none_of(tensors.begin(), tensors.end(), [](const TensorSpec& t) { return t.name == "output.weight"; });
  auto wanted = [&](const std::string& name) {
    if (name == "token_embd.weight") return flash_->embd_resident || (tied && flash_->head_resident);
    if (name == "output.weight") return flash_->head_resident;
    return true;
  };
  std::vector<std::pair<const TensorSpec*, size_t>> plan;  // tensor, offset in resident_
  size_t total = 0;
  for (const auto& t : tensors) {
    if (!wanted(t.name)) continue;
    if (!af_type_supported(t.type) || t.dims.empty()) {
      throw ModelError("GGUF_UNKNOWN_TYPE", "tensor " + t.name + " has unsupported type " + std::to_string(t.type));
    }
    int64_t rows = 1;
    for (size_t d = 1; d < t.dims.size(); d++) rows *= t.dims[d];
    const size_t bytes = af_row_bytes(t.type, t.dims[0]) * static_cast<size_t>(rows);
    if (t.offset > file_bytes_ || bytes > file_bytes_ - t.offset) {
      throw ModelError("GGUF_BAD_TENSOR", "tensor " + t.name + " at offset " + std::to_string(t.offset) + " runs past the end of the file");
    }
    plan.push_back({&t, total});
    total += (bytes + 63) / 64 * 64;
  }
  resident_ = AlignedBuffer(total);
  std::vector<ReadReq> reqs;
  for (const auto& [t, at] : plan) {
    int64_t rows = 1;
    for (size_t d = 1; d < t->dims.size(); d++) rows *= t->dims[d];
    size_t left = af_row_bytes(t->type, t->dims[0]) * static_cast<size_t>(rows);
    // ReadReq lengths are 32-bit: split big tensors.
    uint64_t off = t->offset;
    uint8_t* dst = resident_.data() + at;
    while (left > 0) {
      const uint32_t len = static_cast<uint32_t>(std::min<size_t>(left, 1u << 30));
      reqs.push_back({off, len, dst});
      off += len;
      dst += len;
      left -= len;
    }
    resident_at_[t->name] = resident_.data() + at;
  }
  if (!reqs.empty()) reader_->read(reqs.data(), reqs.size(), nullptr);
}

// Split parts: point each at its resident scale plane, checked against the plane's size.
void Model::bind_scale_planes(const std::vector<TensorSpec>& tensors) {
  for (auto& e : flash_->extents) {
    for (auto& p : e.parts) {
      if (p.scales_name.empty()) continue;
      const auto spec = std::find_if(tensors.begin(), tensors.end(), [&](const TensorSpec& t) { return t.name == p.scales_name; });
      const auto at = resident_at_.find(p.scales_name);
      if (spec == tensors.end() || at == resident_at_.end()) {
        throw ModelError("MODEL_MISSING_TENSOR", "model has no scale plane " + p.scales_name);
      }
      int64_t rows = 1;
      for (size_t d = 1; d < spec->dims.size(); d++) rows *= spec->dims[d];
      const int64_t bytes = static_cast<int64_t>(af_row_bytes(spec->type, spec->dims[0])) * rows;
      const int64_t want = af_colx_scale_bytes(p.type, p.n_out, e.n_in);
      if (spec->type != AF_F16 || bytes != want) {
        throw ModelError("MODEL_BAD_SHAPE", "scale plane " + p.scales_name + " holds " + std::to_string(bytes) + " bytes of type " +
                                                std::to_string(spec->type) + ", split " + std::to_string(p.type) + " columns of " +
                                                std::to_string(p.n_out) + " rows x " + std::to_string(e.n_in) + " channels need " +
                                                std::to_string(want) + " bytes of F16");
      }
      p.scales = at->second;
    }
  }
}

size_t Model::weight_resident_bytes() const {
  if (!flash_) return file_bytes_;
  return resident_.size() + head_staging_.size() + row_staging_.size() + (store_ ? store_->resident_bytes() : 0) +
         (experts_ ? experts_->resident_bytes() : 0) + reader_->staging_bytes();
}

size_t Model::scratch_bytes() const {
  size_t b = 0;
  b += (s_.x.size() + s_.xn.size() + s_.q.size() + s_.k.size() + s_.v.size() + s_.attn.size() + s_.gate.size() +
        s_.up.size() + s_.scores.size() + s_.logits.size()) * sizeof(float);
  b += s_.vrows.size() * sizeof(void*);
  if (moe_) b += moe_->scratch_bytes();
  return b + s_.xq.size();
}

}  // namespace activeflow
