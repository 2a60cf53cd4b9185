#include "harness/fuzz/dictionary.h"

#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <set>

namespace nanguard::fuzz {

std::vector<DictEntry> standard_entries(const FuzzLayout& layout) {
  std::vector<DictEntry> out{{0.0, "zero"},
                             {-0.0, "negative zero"},
                             {FLT_MIN, "smallest normal"},
                             {-FLT_MIN, "negative smallest normal"},
                             {std::numeric_limits<float>::denorm_min(), "smallest subnormal"},
                             {-std::numeric_limits<float>::denorm_min(), "negative smallest subnormal"},
                             {1.0, "one"},
                             {-1.0, "minus one"}};
  for (const auto& s : layout.slots) {
    if (s.integer) continue;
    float lo = static_cast<float>(s.lo), hi = static_cast<float>(s.hi);
    out.push_back({lo, "range low end of " + s.name});
    out.push_back({hi, "range high end of " + s.name});
    if (lo < hi) {
      out.push_back({std::nextafter(lo, hi), "just above the low end of " + s.name});
      out.push_back({std::nextafter(hi, lo), "just below the high end of " + s.name});
    }
  }
  return out;
}

std::vector<DictEntry> unique_entries(const std::vector<DictEntry>& entries) {
  std::set<uint32_t> seen;
  std::vector<DictEntry> out;
  for (const auto& e : entries) {
    float f = static_cast<float>(e.value);
    if (!std::isfinite(f)) continue;
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    if (seen.insert(bits).second) out.push_back({f, e.why});
  }
  return out;
}

std::string dictionary_text(const std::vector<DictEntry>& entries) {
  std::string text = "# nanguard fuzz dictionary: float32 values, little-endian bit patterns\n";
  int n = 0;
  for (const auto& e : unique_entries(entries)) {
    float f = static_cast<float>(e.value);
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    char line[96];
    std::snprintf(line, sizeof line, "v%d=\"\\x%02X\\x%02X\\x%02X\\x%02X\"\n", n++, bits & 0xff, (bits >> 8) & 0xff,
                  (bits >> 16) & 0xff, bits >> 24);
    std::string why = e.why;
    for (char& c : why)
      if (c == '\n') c = ' ';
    char value[48];
    std::snprintf(value, sizeof value, "%.9g", f);
    text += "# " + std::string(value) + ": " + why + "\n" + line;
  }
  return text;
}

}  // namespace nanguard::fuzz
