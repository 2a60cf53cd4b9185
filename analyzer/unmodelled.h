// The finding the analyzer adds where a model computes in a float type whose backward
// pass it does not model (float16/bfloat16 gradients): not a hazard of the op it sits
// on, so a fix is proved without removing it, and a model holding it is never proved.
#pragma once

#include <string>

#include "analyzer/finding.h"

namespace nanguard {

inline constexpr const char* kUnmodelledPrecision = "unmodelled-precision";

inline bool is_unmodelled_precision(const Finding& f) { return f.hazard == kUnmodelledPrecision; }

}  // namespace nanguard
