// The device's cost of one read by size, at the queue depth the reader keeps: seconds of device
// time a read of s bytes takes when many are in flight (1 / IOPS(s) = s / bandwidth(s)), from
// points measured on the device (the machine profile's probe). The read planner merges two
// ranges across a gap when one read of the span costs less than two reads.
#pragma once
#include <cstdint>
#include <vector>

namespace activeflow {

class ReadCost {
 public:
  struct Point {
    uint32_t bytes;
    double seconds;  // device time per read of `bytes` at the reader's depth
  };
  ReadCost() = default;
  // Points with strictly rising sizes and positive times; throws IoError(BAD_ARGUMENT) else.
  explicit ReadCost(std::vector<Point> points);
  bool empty() const { return points_.empty(); }
  // Log-log interpolation between points; beyond the ends, the end's bandwidth (above) or its
  // per-read time (below: a smaller read is no cheaper than the smallest measured one).
  double seconds(uint64_t bytes) const;
  const std::vector<Point>& points() const { return points_; }

 private:
  std::vector<Point> points_;
};

}  // namespace activeflow
