// The inputs of a layer's linear maps ("sites"): q/k/v share one input, gate/up share one.
#pragma once

#include <cstdint>

namespace activeflow {

enum Site { kAttnIn = 0, kAttnOut = 1, kFfnIn = 2, kFfnOut = 3, kSites = 4 };

// A predicted channel of one site, with its priority (higher reads first).
struct ChannelScore {
  float score;
  int32_t site;
  int32_t channel;
};

}  // namespace activeflow
