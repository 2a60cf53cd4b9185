#include "harness/fuzz/seeds.h"

namespace nanguard::fuzz {

std::vector<uint8_t> encode_seed(const FuzzLayout& layout, FillMode mode, uint32_t seed,
                                 const std::vector<std::vector<float>>& stored) {
  std::vector<uint8_t> out(layout.bytes(), 0);
  SplitMix gen{seed};
  for (size_t i = 0; i < layout.slots.size(); ++i) {
    const TensorSlot& s = layout.slots[i];
    size_t at = layout.offset(i);
    out[at] = static_cast<uint8_t>(mode);
    store_u32(out.data(), out.size(), at + 4, static_cast<uint32_t>(gen.next()));
    bool have = i < stored.size() && static_cast<int64_t>(stored[i].size()) >= s.explicit_count();
    for (int64_t k = 0; k < s.explicit_count(); ++k) {
      double v = (s.lo + s.hi) / 2;
      if (have) v = stored[i][k];
      else if (mode == FillMode::kCorners) v = k % 2 ? s.hi : s.lo;
      else if (mode == FillMode::kUniform) v = s.lo + gen.unit() * (s.hi - s.lo);
      store_u32(out.data(), out.size(), at + kSlotHeader + 4 * k, encode_value(v, s));
    }
  }
  return out;
}

}  // namespace nanguard::fuzz
