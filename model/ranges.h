// Value ranges of model inputs (and of free weights): the analysis' precondition and
// the random sampler's domain.
#pragma once

#include <map>
#include <string>

namespace nanguard {

struct Range {
  double lo = 0;
  double hi = 0;
};
using RangeMap = std::map<std::string, Range>;

}  // namespace nanguard
