// The custom mutator of fuzz_model: moves the decoded values of fuzz_layout.h towards
// the places where ops stop being finite (range ends, +-0, thresholds, the
// dictionary), by whole values, halfway steps and single ulps, and switches whole
// tensors between fill modes, instead of flipping bytes that mostly land on values
// the decoder folds somewhere random. Byte mutation stays one move among the others.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "harness/fuzz/fuzz_layout.h"

namespace nanguard::fuzz {

// libFuzzer's own mutation (LLVMFuzzerMutate), or a stand-in in tests.
using ByteMutator = std::function<size_t(uint8_t* data, size_t size, size_t max_size)>;

// kRedraw gives every slot a new seed and half of them a random fill mode: a fresh
// random corner of the whole box, for hazards that need many values to align at once.
enum class Move : uint8_t { kBytes, kSet, kApproach, kUlps, kMode, kFillSlot, kScale, kSeed, kRedraw, kCount };

class ValueMutator {
 public:
  // `dictionary`: values worth trying; each slot keeps those inside its range.
  ValueMutator(FuzzLayout layout, const std::vector<double>& dictionary);

  // Mutates data[0, size) in place and returns the new size (at most max_size): the
  // layout's size when max_size allows, after which one to four moves are stacked.
  size_t mutate(uint8_t* data, size_t size, size_t max_size, uint32_t seed, const ByteMutator& bytes) const;
  // One given move (tests).
  size_t apply(Move move, uint8_t* data, size_t size, size_t max_size, SplitMix& gen, const ByteMutator& bytes) const;

  const std::vector<double>& targets(size_t slot) const { return targets_[slot]; }
  const FuzzLayout& layout() const { return layout_; }

 private:
  size_t pick_slot(SplitMix& gen) const;
  size_t value_at(size_t slot, int64_t element) const { return offsets_[slot] + kSlotHeader + 4 * element; }
  double pick_target(size_t slot, SplitMix& gen) const;

  FuzzLayout layout_;
  std::vector<size_t> offsets_;
  std::vector<std::vector<double>> targets_;  // per slot, inside its range
};

}  // namespace nanguard::fuzz
