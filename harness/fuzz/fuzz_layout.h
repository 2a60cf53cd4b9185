// How fuzz bytes become a model's inputs and free weights, every value inside its
// range. Plain C++ (no ATen) so that the normal build compiles and tests it.
//
// The bytes are one slot per tensor, in layout order: an 8-byte header (fill mode,
// three spare bytes, a 32-bit seed) and min(numel, kExplicitValues) explicit values of
// 4 bytes each. A slot's fill mode says what the elements past the explicit ones hold,
// so that a weight of a million elements costs a few hundred bytes and can still be
// pushed to its corners, a constant or its stored values. Missing bytes read as zero.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace nanguard::fuzz {

constexpr int64_t kExplicitValues = 64;
constexpr size_t kSlotHeader = 8;

enum class FillMode : uint8_t {
  kTile = 0,      // the explicit values repeated
  kUniform = 1,   // explicit values first, then uniform draws from the seed
  kCorners = 2,   // explicit values first, then lo or hi per element from the seed
  kConstant = 3,  // every element the first explicit value
  kStored = 4,    // explicit values first, then the stored weight (tile for inputs)
};
constexpr uint8_t kFillModes = 5;

struct TensorSlot {
  std::string name;
  std::vector<int64_t> shape;
  int32_t elem_type = 1;  // ONNX TensorProto data type
  double lo = -1, hi = 1;
  bool integer = false;   // drawn among the integers lo..hi
  bool weight = false;    // a free weight (stored values exist)

  int64_t numel() const;
  int64_t explicit_count() const;
  size_t bytes() const { return kSlotHeader + 4 * static_cast<size_t>(explicit_count()); }
};

struct FuzzLayout {
  std::vector<TensorSlot> slots;
  size_t bytes() const;
  size_t offset(size_t slot) const;  // where the slot's header starts
};

// One 4-byte value: its bits as a float32 when that is finite and inside [lo, hi]
// (so dictionary entries, which are float32 bit patterns, land exactly), else folded
// uniformly into the range. Integers: lo + bits mod (hi - lo + 1).
double decode_value(uint32_t bits, const TensorSlot& slot);
// The bits decode_value maps to `v` (v clamped into the range and rounded to float32).
uint32_t encode_value(double v, const TensorSlot& slot);

FillMode slot_mode(const uint8_t* data, size_t size, const FuzzLayout& layout, size_t slot);

// Fills `out` (numel elements) for slot `slot` from the fuzz bytes. `stored` is the
// weight's stored values (numel floats) or null.
void fill_float(const uint8_t* data, size_t size, const FuzzLayout& layout, size_t slot, const float* stored,
                float* out);
void fill_int(const uint8_t* data, size_t size, const FuzzLayout& layout, size_t slot, int64_t* out);

uint32_t load_u32(const uint8_t* data, size_t size, size_t at);
void store_u32(uint8_t* data, size_t size, size_t at, uint32_t v);

// Deterministic generator of the fill modes (splitmix64).
struct SplitMix {
  uint64_t state;
  uint64_t next();
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
};

}  // namespace nanguard::fuzz
