// Seed inputs for fuzz_model: a whole layout encoded in one fill mode, so that
// fuzzing starts from the stored model, the boxes' corners and uniform draws.
#pragma once

#include <cstdint>
#include <vector>

#include "harness/fuzz/fuzz_layout.h"

namespace nanguard::fuzz {

// Every slot in `mode` with seed `seed`. Explicit values: `stored[slot]` where given
// (its first values), else the midpoint (kStored, kTile, kConstant), the ends in turn
// (kCorners) or uniform draws (kUniform).
std::vector<uint8_t> encode_seed(const FuzzLayout& layout, FillMode mode, uint32_t seed,
                                 const std::vector<std::vector<float>>& stored = {});

}  // namespace nanguard::fuzz
