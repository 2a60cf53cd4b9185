#include "harness/fuzz/value_mutator.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace nanguard::fuzz {

ValueMutator::ValueMutator(FuzzLayout layout, const std::vector<double>& dictionary) : layout_(std::move(layout)) {
  for (size_t i = 0; i < layout_.slots.size(); ++i) {
    const TensorSlot& s = layout_.slots[i];
    offsets_.push_back(layout_.offset(i));
    std::vector<double> t{s.lo, s.hi};
    if (s.lo <= 0 && 0 <= s.hi) t.insert(t.end(), {0.0, -0.0});
    for (double v : dictionary)
      if (v >= s.lo && v <= s.hi) t.push_back(v);
    targets_.push_back(std::move(t));
  }
}

size_t ValueMutator::pick_slot(SplitMix& gen) const { return gen.next() % layout_.slots.size(); }

double ValueMutator::pick_target(size_t slot, SplitMix& gen) const {
  const auto& t = targets_[slot];
  return t[gen.next() % t.size()];
}

namespace {

float bits_float(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

// The k-th float32 from `x` towards `t` (stops at t).
double ulps_towards(double x, double t, int k) {
  float f = static_cast<float>(x), g = static_cast<float>(t);
  for (int i = 0; i < k && f != g; ++i) f = std::nextafter(f, g);
  return f;
}

}  // namespace

size_t ValueMutator::apply(Move move, uint8_t* data, size_t size, size_t max_size, SplitMix& gen,
                           const ByteMutator& bytes) const {
  if (move == Move::kBytes || layout_.slots.empty()) return bytes(data, size, max_size);
  if (move == Move::kRedraw) {
    for (size_t i = 0; i < layout_.slots.size(); ++i) {
      store_u32(data, size, offsets_[i] + 4, static_cast<uint32_t>(gen.next()));
      if (gen.next() % 2) data[offsets_[i]] = static_cast<uint8_t>(gen.next() % kFillModes);
    }
    return size;
  }
  size_t slot = pick_slot(gen);
  const TensorSlot& s = layout_.slots[slot];
  int64_t k = s.explicit_count(), e = k ? static_cast<int64_t>(gen.next() % k) : 0;
  size_t at = value_at(slot, e);
  double x = decode_value(load_u32(data, size, at), s);
  switch (move) {
    case Move::kSet: store_u32(data, size, at, encode_value(pick_target(slot, gen), s)); break;
    case Move::kApproach: {
      static constexpr double kShares[] = {0.5, 0.9, 0.99, 0.999};
      double t = pick_target(slot, gen);
      store_u32(data, size, at, encode_value(x + (t - x) * kShares[gen.next() % 4], s));
      break;
    }
    case Move::kUlps:
      store_u32(data, size, at, encode_value(ulps_towards(x, pick_target(slot, gen), 1 + gen.next() % 16), s));
      break;
    case Move::kMode: data[offsets_[slot]] = static_cast<uint8_t>(gen.next() % kFillModes); break;
    case Move::kFillSlot: {
      uint32_t v = encode_value(pick_target(slot, gen), s);
      for (int64_t i = 0; i < k; ++i) store_u32(data, size, value_at(slot, i), v);
      data[offsets_[slot]] = static_cast<uint8_t>(gen.next() % 2 ? FillMode::kConstant : FillMode::kTile);
      break;
    }
    case Move::kScale: {
      static constexpr double kFactors[] = {2, 16, 0.5, 1.0 / 16, -1};
      double f = kFactors[gen.next() % 5];
      store_u32(data, size, at, encode_value(x == 0 ? bits_float(1) * f : x * f, s));
      break;
    }
    case Move::kSeed: store_u32(data, size, offsets_[slot] + 4, static_cast<uint32_t>(gen.next())); break;
    default: break;
  }
  return size;
}

size_t ValueMutator::mutate(uint8_t* data, size_t size, size_t max_size, uint32_t seed,
                            const ByteMutator& bytes) const {
  size_t want = layout_.bytes();
  if (want > max_size) return bytes(data, size, max_size);  // no room for the structure
  if (size < want) std::memset(data + size, 0, want - size);
  size = want;
  SplitMix gen{seed};
  // Stacked moves, as libFuzzer stacks its own. One in three is libFuzzer's byte
  // mutation: it finds what the moves cannot (bit patterns between the targets); the
  // rest are the value moves, redraws of the whole box among them.
  int depth = 1 + static_cast<int>(gen.next() % 4);
  for (int d = 0; d < depth && size == want; ++d) {
    uint64_t r = gen.next() % 12;
    Move move = r < 4 ? Move::kBytes : static_cast<Move>(1 + (r - 4) % (static_cast<int>(Move::kCount) - 1));
    size = apply(move, data, size, max_size, gen, bytes);
  }
  return std::min(size, max_size);
}

}  // namespace nanguard::fuzz
