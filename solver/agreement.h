// Agreement: how much a fix changes the outputs where the original was already
// finite. A clip fix should leave normal inputs alone; one that does not says so.
#pragma once

#include <vector>

#include "model/graph.h"
#include "model/ranges.h"
#include "model/status.h"
#include "oracle/executor.h"

namespace nanguard {

struct Agreement {
  int64_t samples = 0;
  int64_t original_finite = 0;  // samples where every output of the original is finite
  int64_t unchanged = 0;        // of those, every output of the fix within 1e-6 of max |output|
  double share = 1;             // unchanged / original_finite (1 when none is finite)
  double max_change = 0;        // largest max |fixed - original| / max |original| (INF: the fix is not finite)
};

// Relative tolerance under which an output counts as unchanged.
constexpr double kUnchangedTolerance = 1e-6;

// On `data` when given (each map holds every runtime input), else on `samples` draws
// uniform in `ranges` from `seed`. Both models run with their stored weights. With
// max_seconds > 0 it stops after that long (at least one sample; `samples` says how many).
Result<Agreement> measure_agreement(const Graph& fixed, const Graph& original, const std::vector<TensorMap>& data,
                                    const RangeMap& ranges, int64_t samples, uint64_t seed, at::Device device,
                                    double max_seconds = 0);

}  // namespace nanguard
