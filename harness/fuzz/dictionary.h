// The values worth trying on a model: range ends, zeros, the smallest normal and
// subnormal float32, op thresholds, unit witnesses' operands. Written as a libFuzzer
// dictionary (each value's float32 bit pattern, little-endian, which the decoder of
// fuzz_layout.h reads back exactly) and kept in the config for the custom mutator.
#pragma once

#include <string>
#include <vector>

#include "harness/fuzz/fuzz_layout.h"

namespace nanguard::fuzz {

struct DictEntry {
  double value = 0;
  std::string why;  // e.g. "range end of x", "threshold exp-overflow"
};

// Range ends (and their float32 neighbours inside the range) of every float slot,
// +-0, +-smallest normal, +-smallest subnormal, 1 and -1.
std::vector<DictEntry> standard_entries(const FuzzLayout& layout);

// One entry per distinct float32 value (the first reason kept), in the given order.
std::vector<DictEntry> unique_entries(const std::vector<DictEntry>& entries);

// The libFuzzer dictionary: a comment with the reason, then name="\xNN\xNN\xNN\xNN".
std::string dictionary_text(const std::vector<DictEntry>& entries);

}  // namespace nanguard::fuzz
