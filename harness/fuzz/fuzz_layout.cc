#include "harness/fuzz/fuzz_layout.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace nanguard::fuzz {

int64_t TensorSlot::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= std::max<int64_t>(d, 0);
  return n;
}

int64_t TensorSlot::explicit_count() const { return std::min(numel(), kExplicitValues); }

size_t FuzzLayout::bytes() const {
  size_t n = 0;
  for (const auto& s : slots) n += s.bytes();
  return n;
}

size_t FuzzLayout::offset(size_t slot) const {
  size_t n = 0;
  for (size_t i = 0; i < slot && i < slots.size(); ++i) n += slots[i].bytes();
  return n;
}

uint32_t load_u32(const uint8_t* data, size_t size, size_t at) {
  uint32_t v = 0;
  for (size_t k = 0; k < 4; ++k)
    if (at + k < size) v |= static_cast<uint32_t>(data[at + k]) << (8 * k);
  return v;
}

void store_u32(uint8_t* data, size_t size, size_t at, uint32_t v) {
  for (size_t k = 0; k < 4; ++k)
    if (at + k < size) data[at + k] = static_cast<uint8_t>(v >> (8 * k));
}

uint64_t SplitMix::next() {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

namespace {

float as_float(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint32_t as_bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

// The float32 ends inside [lo, hi]: a value folded into the range must not round out.
float inner_lo(const TensorSlot& s) {
  float f = static_cast<float>(s.lo);
  return f < s.lo ? std::nextafter(f, INFINITY) : f;
}
float inner_hi(const TensorSlot& s) {
  float f = static_cast<float>(s.hi);
  return f > s.hi ? std::nextafter(f, -INFINITY) : f;
}

int64_t int_count(const TensorSlot& s) {
  return static_cast<int64_t>(std::floor(s.hi)) - static_cast<int64_t>(std::ceil(s.lo)) + 1;
}

}  // namespace

double decode_value(uint32_t bits, const TensorSlot& s) {
  if (s.integer) {
    int64_t n = std::max<int64_t>(int_count(s), 1);
    return static_cast<double>(static_cast<int64_t>(std::ceil(s.lo)) + static_cast<int64_t>(bits % n));
  }
  float f = as_float(bits);
  float lo = inner_lo(s), hi = inner_hi(s);
  if (std::isfinite(f) && f >= lo && f <= hi) return f;
  // 24 bits of the word place the value evenly; the result is rounded into the range.
  double u = static_cast<double>(bits >> 8) / static_cast<double>(1u << 24);
  float v = static_cast<float>(lo + u * (static_cast<double>(hi) - lo));
  return std::clamp(v, lo, hi);
}

uint32_t encode_value(double v, const TensorSlot& s) {
  if (s.integer) {
    int64_t n = std::max<int64_t>(int_count(s), 1);
    int64_t k = static_cast<int64_t>(std::llround(std::clamp(v, s.lo, s.hi))) - static_cast<int64_t>(std::ceil(s.lo));
    return static_cast<uint32_t>(std::clamp<int64_t>(k, 0, n - 1));
  }
  float f = std::isnan(v) ? inner_lo(s) : std::clamp(static_cast<float>(v), inner_lo(s), inner_hi(s));
  return as_bits(f);
}

FillMode slot_mode(const uint8_t* data, size_t size, const FuzzLayout& layout, size_t slot) {
  size_t at = layout.offset(slot);
  uint8_t m = at < size ? data[at] : 0;
  return static_cast<FillMode>(m % kFillModes);
}

namespace {

double uniform_value(SplitMix& gen, const TensorSlot& s) {
  if (s.integer) return std::ceil(s.lo) + static_cast<double>(gen.next() % std::max<int64_t>(int_count(s), 1));
  return s.lo + gen.unit() * (s.hi - s.lo);
}

// Calls put(i, value) for every element of the slot, the explicit values decoded with
// `decode`, the rest by the slot's fill mode.
template <typename Put>
void fill_slot(const uint8_t* data, size_t size, const FuzzLayout& layout, size_t slot, bool have_stored, Put put) {
  const TensorSlot& s = layout.slots[slot];
  size_t at = layout.offset(slot);
  FillMode mode = slot_mode(data, size, layout, slot);
  if (mode == FillMode::kStored && !have_stored) mode = FillMode::kTile;
  SplitMix gen{load_u32(data, size, at + 4)};
  int64_t n = s.numel(), k = s.explicit_count();
  std::vector<double> values(static_cast<size_t>(k));
  for (int64_t i = 0; i < k; ++i) values[i] = decode_value(load_u32(data, size, at + kSlotHeader + 4 * i), s);
  for (int64_t i = 0; i < n; ++i) {
    if (mode == FillMode::kConstant) { put(i, values[0], false); continue; }
    if (i < k) { put(i, values[i], false); continue; }
    switch (mode) {
      case FillMode::kTile: put(i, values[i % k], false); break;
      case FillMode::kUniform: put(i, uniform_value(gen, s), false); break;
      case FillMode::kCorners: put(i, (gen.next() >> 63) ? s.hi : s.lo, false); break;
      default: put(i, 0.0, true); break;  // stored
    }
  }
}

}  // namespace

void fill_float(const uint8_t* data, size_t size, const FuzzLayout& layout, size_t slot, const float* stored,
                float* out) {
  const TensorSlot& s = layout.slots[slot];
  float lo = inner_lo(s), hi = inner_hi(s);
  fill_slot(data, size, layout, slot, stored != nullptr, [&](int64_t i, double v, bool from_stored) {
    out[i] = from_stored ? std::clamp(stored[i], lo, hi) : std::clamp(static_cast<float>(v), lo, hi);
  });
}

void fill_int(const uint8_t* data, size_t size, const FuzzLayout& layout, size_t slot, int64_t* out) {
  fill_slot(data, size, layout, slot, false, [&](int64_t i, double v, bool) { out[i] = static_cast<int64_t>(v); });
}

}  // namespace nanguard::fuzz
