// The inputs of a layer's linear maps ("sites"): q/k/v share one input, gate/up share one.
#pragma once

namespace activeflow {

enum Site { kAttnIn = 0, kAttnOut = 1, kFfnIn = 2, kFfnOut = 3, kSites = 4 };

}  // namespace activeflow
