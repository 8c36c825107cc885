// A llama-family model held in DRAM (the file mapped read-only) and its run state.
// Config, weights and run state are separate types, as in llama2.c.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <initializer_list>
#include <string>
#include <unordered_map>
#include <vector>

#include "io/aligned_buffer.h"
#include "io/flash_file.h"
#include "io/reader.h"
#include "model/activation_stats.h"
#include "model/predictor.h"
#include "model/column_store.h"
#include "model/dense_linear.h"
#include "model/model_error.h"
#include "model/moe_ffn.h"
#include "model/weights.h"
#include "model/threadpool.h"

namespace activeflow {


struct ModelConfig {
  int n_layer = 0;
  int n_embd = 0;      // residual width
  int n_ff = 0;        // FFN hidden width
  int n_head = 0;
  int n_head_kv = 0;
  int head_dim = 0;    // per-head width of q and k (and v)
  int n_vocab = 0;
  int n_rot = 0;       // rotated dims per head (<= head_dim)
  float rope_theta = 10000.0f;
  float rms_eps = 1e-5f;
  bool rope_neox = false;  // pairs (i, i + n_rot/2) instead of (2i, 2i+1)
  float rope_attn_factor = 1.0f;  // multiplies rope's cos and sin (rope.scaling.attn_factor)
  int n_ctx = 2048;        // KV cache length in tokens
  int n_batch = 64;        // prefill chunk: tokens evaluated per pass
  // Gemma 2 / 3 (src/model/gemma.ts says where each comes from); the defaults change nothing.
  float embd_scale = 1.0f;     // token embeddings are multiplied by this
  float attn_scale = 0.0f;     // 0: scores x 1/sqrt(head_dim) after q.k; else q x attn_scale before
  float attn_softcap = 0.0f;   // 0 = none; else each score s -> cap * tanh(s / cap)
  float final_softcap = 0.0f;  // the same on the logits
  bool ffn_gelu = false;       // GeGLU instead of SwiGLU
  bool post_norms = false;     // post_attention_norm and post_ffw_norm required and applied
  int n_swa = 0;               // sliding window in positions; 0 = none
  std::vector<uint8_t> swa_layers;  // [n_layer] 1 = the layer slides (empty = none)
  float rope_theta_swa = 10000.0f;  // rope base of the sliding layers
  float rope_scale = 1.0f;          // position multiplier (linear scaling) of the other layers
  float rope_scale_swa = 1.0f;
  bool is_swa(int layer) const { return n_swa > 0 && layer < static_cast<int>(swa_layers.size()) && swa_layers[layer]; }
  MoeConfig moe;           // mixture of experts; n_expert == 0 for a dense FFN
};

// A read-only mapping of the model file.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  // Drops this process's mapping of the whole pages inside [offset, offset + bytes) (their
  // RSS); a later read maps them from the file again.
  void release(size_t offset, size_t bytes);

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Anonymous memory asked for in transparent huge pages: the packed weights, written once at
// load (2 MiB pages fault 512 times less often than 4 KiB ones).
class HugeBuffer {
 public:
  HugeBuffer() = default;
  explicit HugeBuffer(size_t bytes);
  ~HugeBuffer();
  HugeBuffer(const HugeBuffer&) = delete;
  HugeBuffer& operator=(const HugeBuffer&) = delete;
  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Description of one tensor as the GGUF reader found it (absolute file offset).
struct TensorSpec {
  std::string name;
  int type;
  std::vector<int64_t> dims;
  uint64_t offset;
};

// How a flash-layout model is run: which tensors live where and how the DRAM budget is split.
struct FlashSetup {
  std::vector<FlashExtent> extents;  // [group][site]
  int group_size = 1;
  std::vector<uint32_t> crcs;  // CRC-32C per 4 KiB page from crc_base over all extents
  uint64_t crc_base = 0;
  bool verify = false;         // check every page read against its CRC
  bool direct = true;          // O_DIRECT (falls back to buffered + DONTNEED where refused)
  size_t cache_bytes = 0;      // hot-column cache share of the budget
  bool embd_resident = false;  // token_embd rows in DRAM, else one small read per token
  bool head_resident = true;   // output head in DRAM, else streamed through a staging buffer
  size_t head_staging_bytes = 4 << 20;
  unsigned queue_depth = kDefaultQueueDepth;
  uint32_t max_read = kDefaultMaxRead;
  // Preload reads in flight at most (on-demand reads wait behind these); 0 = queue_depth.
  unsigned max_background = kDefaultMaxBackground;
  // Without a read-cost curve: active records this close are read together (the inactive
  // ones between them included).
  int64_t max_gap = kDefaultMaxGap;
  // The device's time per read by size (the machine profile): merges ranges when one read
  // is cheaper than two. Empty: max_gap decides.
  std::vector<ReadCost::Point> read_cost;
  // Merge by max_gap even with a curve (benchmarks compare read strategies).
  bool fixed_gap = false;
  CachePolicyKind cache_policy = CachePolicyKind::kLfu;
  // Two group buffers (the computing group and the next) share this; 0 = none. They hold
  // preloaded records and, for groups of several layers, records read on demand, so later
  // layers of the group find them.
  size_t preload_bytes = 0;
  // Predict and read the next group ahead; false loads every miss on demand.
  bool predict = true;
  // Groups of one layer: read every uncached record of the next site while this one
  // computes, with no prediction (ColumnStore::set_read_ahead); uses the preload buffers.
  bool read_ahead = false;
  // A channel is predicted active when its predicted |x| exceeds margin x threshold.
  float predict_margin = 1.0f;
  // Mixture-of-experts models: extents holds attn_in and attn_out per group only (the FFN
  // sites are the experts'); experts is [n_layer][experts_per_layer] (model/expert_store.h).
  std::vector<ExpertSpan> experts;
  int experts_per_layer = 0;
  size_t expert_pool_bytes = 0;  // the expert slots' share of the budget
  bool pregate = true;           // read the next layer's predicted experts ahead
};

// Per-pass scratch, sized for n_batch tokens.
struct Scratch {
  std::vector<float> x;       // [n_batch][n_embd] residual stream
  std::vector<float> xn;      // [n_batch][max(n_embd, n_ff)] normed input of a linear layer
  std::vector<float> q;       // [n_batch][n_head * head_dim]
  std::vector<float> k;       // [n_batch][kv_dim]
  std::vector<float> v;       // [n_batch][kv_dim]
  std::vector<float> attn;    // [n_batch][n_head * head_dim] attention output
  std::vector<float> gate;    // [n_batch][n_ff]
  std::vector<float> up;      // [n_batch][n_ff]
  std::vector<float> scores;  // [threads][n_ctx] attention scores
  std::vector<const void*> vrows;  // [threads][n_ctx] value rows of one head
  std::vector<uint8_t> xq;    // [n_batch][act bytes of the widest input] quantised activations
  std::vector<float> logits;  // [n_vocab] last-token logits (when not all rows are wanted)
};

class Model {
 public:
  // flash == nullptr: the whole GGUF is mapped (dense, in DRAM). Otherwise `path` is a
  // flash-layout file: `tensors` lists its resident tensors and the linear layers come
  // from the column store.
  Model(const std::string& path, const ModelConfig& cfg, const std::vector<TensorSpec>& tensors,
        int threads, std::unique_ptr<FlashSetup> flash = nullptr);
  const ModelConfig& config() const { return cfg_; }
  size_t file_bytes() const { return file_bytes_; }
  bool is_flash() const { return store_ != nullptr; }
  ColumnStore* store() { return store_.get(); }
  ExpertStore* experts() { return experts_.get(); }
  // DRAM held for weights now: mapped or copied resident tensors, cache, staging.
  size_t weight_resident_bytes() const;
  size_t scratch_bytes() const;
  uint64_t head_bytes_read() const { return head_bytes_read_; }
  size_t kv_bytes() const { return kv_elems_ * sizeof(uint16_t) * 2; }
  int threads() const { return pool_->size(); }
  void set_threads(int threads);

  // Contextual sparsity: an input element of a linear layer takes part only if |x| > the
  // threshold of its (layer, site). t is [n_layer][kSites]; nullptr restores the dense model.
  void set_thresholds(const float* t);
  // Weight-aware selection: the element is kept when |x_j| * norms_j > the threshold instead,
  // norms_j the L2 norm of the site's weight column j (over q, k, v or gate, up together).
  // norms: [n_layer][kSites][site width] (widths n_embd, q width, n_embd, n_ff), sites in
  // order; nullptr restores magnitude selection. The thresholds must be calibrated on the same score.
  void set_column_norms(const float* norms);
  bool weight_aware() const { return !col_norms_.empty(); }
  size_t column_norm_count() const { return static_cast<size_t>(cfg_.n_layer) * layer_channels_; }
  // Histograms, per-channel active counts and traces of every site input (calibration, studies).
  ActivationStats& activation_stats() { return act_stats_; }
  // Elements kept and seen per site since the last reset (active fraction = kept / seen).
  const uint64_t* site_kept() const { return kept_; }
  const uint64_t* site_seen() const { return seen_; }
  void reset_site_counts();
  const PredictCounts& predict_counts() const { return predictor_.counts(); }
  // The same counts per layer: [n_layer][kSites][kMaxPredictDistance + 1][tp, fp, fn].
  const std::vector<uint64_t>& predict_layer_counts() const { return predictor_.layer_counts(); }
  void reset_predict_counts() { predictor_.reset_counts(); }

  // Evaluates tokens at positions [pos, pos + n). Writes logits of the last token to
  // `logits` ([n_vocab]) or, when all_logits, of every token ([n][n_vocab]).
  // Polls `abort` between layers and throws ModelError("ABORTED") when set.
  void eval(const int32_t* tokens, int n, int pos, float* logits, bool all_logits,
            const std::atomic<bool>* abort);

 private:
  void bind_weights(const std::vector<TensorSpec>& tensors);
  // Dense mode: repacks the linear weights into packed_ for the packed kernels.
  void pack_weights();
  void load_resident(const std::vector<TensorSpec>& tensors);
  void bind_scale_planes(const std::vector<TensorSpec>& tensors);
  void embed(int32_t token, float* out);
  void output_head(const float* xn, int n, float* logits);
  void eval_chunk(const int32_t* tokens, int n, int pos, float* logits, bool all_logits,
                  const std::atomic<bool>* abort);
  void attention(int layer, int n, int pos);
  // Applies the site's threshold to n input rows in place and feeds the histograms.
  void site_input(int layer, int site, float* x, int n, int64_t n_in, size_t stride);
  void rope(float* v, int n_heads, int pos, int layer);
  // Predicts group g's active channels from residual rows x and starts reading them.
  void preload_group(int group, const float* x, int n);
  // Groups of one layer: predicts (layer, site) from residual rows x and starts reading it.
  void prefetch_site(int layer, int site, const float* x, int n);

  ModelConfig cfg_;
  size_t file_bytes_ = 0;
  std::unique_ptr<MappedFile> file_;  // dense mode
  std::unique_ptr<HugeBuffer> packed_;  // dense mode: the packed linear weights, [tensor][rows]
  // Flash mode: resident tensors copied into resident_, the rest read through reader_.
  std::unique_ptr<FlashSetup> flash_;
  std::shared_ptr<FlashFile> flash_file_;
  std::shared_ptr<Reader> reader_;
  ReadCost read_cost_;  // the device's curve (FlashSetup::read_cost): read merging, cache split
  PageChecksums sums_;
  AlignedBuffer resident_;
  std::unordered_map<std::string, const uint8_t*> resident_at_;  // tensor name -> copy in resident_
  AlignedBuffer head_staging_;  // [rows that fit][row_bytes] of a streamed output head
  AlignedBuffer row_staging_;   // one token_embd row read on demand
  std::unique_ptr<ColumnStore> store_;
  std::unique_ptr<DenseLinear> dense_;  // dense mode
  LinearSource* linears_ = nullptr;     // store_ or dense_: what the forward pass multiplies with
  std::unique_ptr<MoeFfn> moe_;         // MoE models: the FFN of every layer
  std::unique_ptr<ExpertStore> experts_;  // MoE models in flash mode: the experts' slots
  uint64_t head_bytes_read_ = 0;
  Weights w_;
  std::unique_ptr<ThreadPool> pool_;
  // calloc'd so untouched cache pages cost no RSS until positions are written.
  // F16 as llama.cpp keeps it: half the memory, and the same rounding of keys and values.
  struct FreeDeleter { void operator()(uint16_t* p) const { std::free(p); } };
  std::unique_ptr<uint16_t[], FreeDeleter> kv_k_;  // [n_layer][n_ctx][kv_dim] f16
  std::unique_ptr<uint16_t[], FreeDeleter> kv_v_;  // [n_layer][n_ctx][kv_dim] f16
  size_t kv_elems_ = 0;
  std::vector<float> inv_freq_;      // [n_rot / 2] rotation frequency per pair (times rope_scale)
  std::vector<float> inv_freq_swa_;  // [n_rot / 2] the same for sliding layers
  Scratch s_;
  std::vector<float> thresholds_;  // [n_layer][kSites]; empty = dense
  std::vector<float> col_norms_;   // [n_layer][kSites][site width]; empty = magnitude selection
  size_t site_offset_[kSites] = {0, 0, 0, 0};  // channel offset of each site inside a layer's norms
  size_t layer_channels_ = 0;                   // sum of the site widths
  ActivationStats act_stats_;
  uint64_t kept_[kSites] = {0, 0, 0, 0};
  uint64_t seen_[kSites] = {0, 0, 0, 0};
  Predictor predictor_;
};

}  // namespace activeflow
