#include "io/read_cost.h"

#include <cmath>
#include <string>

#include "io/io_error.h"

namespace activeflow {

ReadCost::ReadCost(std::vector<Point> points) : points_(std::move(points)) {
  for (size_t i = 0; i < points_.size(); i++) {
    const Point& p = points_[i];
    if (p.bytes == 0 || !(p.seconds > 0) || !std::isfinite(p.seconds)) {
      throw IoError("BAD_ARGUMENT", "read cost point " + std::to_string(i) + " (" + std::to_string(p.bytes) + " bytes, " +
                                        std::to_string(p.seconds) + " s) needs a positive size and time");
    }
    if (i > 0 && p.bytes <= points_[i - 1].bytes) {
      throw IoError("BAD_ARGUMENT", "read cost points must have strictly rising sizes (point " + std::to_string(i) + ")");
    }
  }
}

double ReadCost::seconds(uint64_t bytes) const {
  if (points_.empty()) return static_cast<double>(bytes);
  const Point& lo = points_.front();
  if (bytes <= lo.bytes) return lo.seconds;
  const Point& hi = points_.back();
  if (bytes >= hi.bytes) return hi.seconds * static_cast<double>(bytes) / hi.bytes;
  size_t i = 1;
  while (points_[i].bytes < bytes) i++;
  const Point& a = points_[i - 1];
  const Point& b = points_[i];
  const double f = std::log(static_cast<double>(bytes) / a.bytes) / std::log(static_cast<double>(b.bytes) / a.bytes);
  return a.seconds * std::pow(b.seconds / a.seconds, f);
}

}  // namespace activeflow
