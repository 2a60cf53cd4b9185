// fuzz_model: libFuzzer on one model (see README.md). The folder that `nanguard
// fuzz-config` wrote is $NANGUARD_FUZZ_CONFIG, else <this binary>_config beside it
// (how ClusterFuzzLite ships it). Each input decodes into in-range inputs and free
// weights; a NaN/INF that starts at a node outside the baseline writes a reproducer
// under $NANGUARD_FUZZ_OUT (when set) and aborts, so that libFuzzer keeps the input.
// A failure whose reproducer folder exists already is known: the run goes on, so a
// restarted fuzzer looks for the others. NANGUARD_FUZZ_PLAIN=1: plain byte mutation;
// NANGUARD_FUZZ_NO_MAGNITUDES=1: code coverage only (model_runner.h's counters off).
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <set>

#include "harness/fuzz/model_runner.h"
#include "harness/fuzz/one_thread.h"
#include "harness/fuzz/value_mutator.h"

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace {

std::unique_ptr<nanguard::fuzz::ModelRunner> g_runner;
std::unique_ptr<nanguard::fuzz::ValueMutator> g_mutator;
std::string g_out;
bool g_plain = false;
std::set<nanguard::fuzz::FailureKey> g_seen;  // without an out folder
// libFuzzer reads this section as extra coverage (and clears it before each run).
__attribute__((used, section("__libfuzzer_extra_counters"))) uint8_t g_magnitudes[1 << 14];

std::string config_dir(const char* argv0) {
  if (const char* d = std::getenv("NANGUARD_FUZZ_CONFIG")) return d;
  return std::string(argv0) + "_config";
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  nanguard::fuzz::run_on_one_thread();
  std::string dir = config_dir((*argv)[0]);
  auto runner = nanguard::fuzz::ModelRunner::open(dir);
  if (!runner.ok()) {
    std::fprintf(stderr, "fuzz_model: %s\n", runner.status().message().c_str());
    std::exit(2);
  }
  g_runner = std::move(*runner);
  const char* flat = std::getenv("NANGUARD_FUZZ_NO_MAGNITUDES");
  if (!flat || std::string(flat) != "1") g_runner->set_magnitude_counters(g_magnitudes, sizeof g_magnitudes);
  std::vector<double> dict;
  for (const auto& e : g_runner->config().dictionary) dict.push_back(e.value);
  g_mutator = std::make_unique<nanguard::fuzz::ValueMutator>(g_runner->config().layout, dict);
  if (const char* o = std::getenv("NANGUARD_FUZZ_OUT")) g_out = o;
  const char* plain = std::getenv("NANGUARD_FUZZ_PLAIN");
  g_plain = plain && std::string(plain) == "1";
  std::fprintf(stderr, "fuzz_model: %s, %zu input bytes, %zu dictionary values, %s mutation\n",
               g_runner->config().source_model.c_str(), g_runner->config().layout.bytes(), dict.size(),
               g_plain ? "plain byte" : "custom value");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static unsigned long long execs = 0;  // libFuzzer prints no stats when a run aborts
  ++execs;
  nanguard::TensorMap feeds = g_runner->feeds(data, size);
  bool fresh = false;
  for (const auto& f : g_runner->run(feeds)) {
    if (g_runner->accepted(f)) continue;
    std::string dir = g_out.empty() ? "" : g_runner->reproducer_dir(g_out, f);
    if (g_out.empty() ? !g_seen.insert(f.key()).second : std::filesystem::exists(dir)) continue;
    if (!dir.empty()) {
      if (auto s = g_runner->write_reproducer(f, feeds, dir); !s.ok()) {
        std::fprintf(stderr, "fuzz_model: no reproducer: %s\n", s.message().c_str());
        dir.clear();
      }
    }
    std::fprintf(stderr, "nanguard-fuzz: failure node=%s op=%s hazard=%s kind=%s reproducer=%s\n", f.node.c_str(),
                 f.op.c_str(), f.hazard.c_str(), f.kind.c_str(), dir.c_str());
    fresh = true;
  }
  if (fresh) {
    std::fprintf(stderr, "nanguard-fuzz: execs=%llu\n", execs);
    std::abort();
  }
  return 0;
}

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  if (g_plain) return LLVMFuzzerMutate(data, size, max_size);
  return g_mutator->mutate(data, size, max_size, seed, LLVMFuzzerMutate);
}
