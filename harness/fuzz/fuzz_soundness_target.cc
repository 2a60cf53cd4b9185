// fuzz_soundness: bytes -> one op of the registry (an ONNX node test: real attributes
// and shapes), intervals for its float inputs, and a seed for the concrete points
// inside them (corners, float32 edge values, uniform draws; harness/soundness.h).
// A concrete value outside the analyzer's bounds, or an unreported NaN/INF, prints
// the case and aborts: each becomes a unit test and a fix (see README.md).
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <map>

#include "harness/fuzz/fuzz_layout.h"
#include "harness/fuzz/one_thread.h"
#include "harness/fuzz/soundness_case.h"
#include "harness/soundness.h"

namespace {

std::vector<std::string> g_models;
std::set<std::string> g_known;  // node tests with open findings, skipped (the CI smoke)
std::map<size_t, std::optional<nanguard::fuzz::SoundnessCase>> g_cases;  // loaded on first use; nullopt: unusable

const nanguard::fuzz::SoundnessCase* case_at(size_t i) {
  auto it = g_cases.find(i);
  if (it == g_cases.end()) {
    std::string test = std::filesystem::path(g_models[i]).parent_path().filename().string();
    if (g_known.count(test)) return nullptr;
    auto c = nanguard::fuzz::load_soundness_case(g_models[i]);
    it = g_cases.emplace(i, c.ok() ? std::optional(std::move(*c)) : std::nullopt).first;
  }
  return it->second ? &*it->second : nullptr;
}

// $NANGUARD_SOUNDNESS_CASES, else <this binary>_cases beside it (ClusterFuzzLite's
// $OUT), else Debian's libonnx-testdata.
std::string cases_dir(const char* argv0) {
  if (const char* d = std::getenv("NANGUARD_SOUNDNESS_CASES")) return d;
  std::string beside = std::string(argv0) + "_cases";
  std::error_code ec;
  if (std::filesystem::is_directory(beside, ec)) return beside;
  return "/usr/share/libonnx-testdata/data/node";
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char*** argv) {
  nanguard::fuzz::run_on_one_thread();
  g_models = nanguard::fuzz::node_test_models(cases_dir((*argv)[0]));
  // $NANGUARD_SOUNDNESS_SKIP: a file of node test names (one a line) not to check.
  if (const char* skip = std::getenv("NANGUARD_SOUNDNESS_SKIP")) {
    std::ifstream in(skip);
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) g_known.insert(line);
  }
  if (g_models.empty()) {
    std::fprintf(stderr, "fuzz_soundness: no node tests (install libonnx-testdata or set NANGUARD_SOUNDNESS_CASES)\n");
    std::exit(2);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 6) return 0;
  size_t index = (data[0] | data[1] << 8) % g_models.size();
  uint32_t seed = nanguard::fuzz::load_u32(data, size, 2);
  const nanguard::fuzz::SoundnessCase* c = case_at(index);
  if (!c) return 0;
  nanguard::AnalyzeOptions opt;
  opt.ranges = nanguard::fuzz::ranges_from_bytes(*c, data, size, 6);
  // The backward pass runs from the real output gradients: only the chained bound
  // claims them (the local hazards assume an output gradient of 1).
  opt.gradients = nanguard::GradientMode::kChain;
  auto rep = nanguard::check_soundness(c->graph, opt, 4, seed);
  if (!rep.ok() || rep->violations.empty()) return 0;
  const auto& v = rep->violations.front();
  std::fprintf(stderr, "nanguard-soundness: %s: node %s tensor %s: %s: %.9g not in [%.9g, %.9g] (sample %lld)\n",
               g_models[index].c_str(), v.node.c_str(), v.tensor.c_str(), v.what.c_str(), v.value, v.lo, v.hi,
               static_cast<long long>(v.sample));
  for (const auto& [name, r] : opt.ranges) std::fprintf(stderr, "  range %s = [%.9g, %.9g]\n", name.c_str(), r.lo, r.hi);
  std::abort();
}
