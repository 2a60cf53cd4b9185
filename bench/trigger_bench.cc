// Trigger time per GRIST defect: load, analyze and the search for the defect's node,
// until a witness is confirmed by a real float32 run (or the budget ends). The
// baseline, uniform random sampling in the same box, is registered beside it for the
// same defect (`trigger_random/...`). Counters: triggered (1/0), runs (float32 model
// runs). NANGUARD_BENCH_BUDGET sets the budget per defect (seconds, default 60).
#include <cstdlib>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <nlohmann/json.hpp>

#include "bench/grist_defects.h"
#include "model/onnx_loader.h"
#include "solver/trigger.h"

namespace {

using namespace nanguard;
using nanguard::bench::Defect;

TriggerOptions options_for(const Defect& d, bool random_only) {
  TriggerOptions o;
  o.analyze = nanguard::bench::analyze_options(d);
  o.node = d.node;
  const char* budget = std::getenv("NANGUARD_BENCH_BUDGET");
  o.budget_seconds = budget ? std::atof(budget) : 60;
  o.random_only = random_only;
  return o;
}

void bm_trigger(benchmark::State& state, Defect d, bool random_only) {
  LoadOptions lo = nanguard::bench::load_options(d);
  TriggerOptions opt = options_for(d, random_only);
  double hit = 0, runs = 0;
  for (auto _ : state) {
    auto g = load_model(d.model, lo);
    if (!g.ok()) { state.SkipWithError(g.status().message().c_str()); return; }
    auto r = trigger(*g, opt);
    if (!r.ok()) { state.SkipWithError(r.status().message().c_str()); return; }
    hit = !r->outcomes.empty() && r->outcomes[0].status == "triggered";
    runs = r->outcomes.empty() ? 0 : static_cast<double>(r->outcomes[0].system.runs);
  }
  state.counters["triggered"] = hit;
  state.counters["runs"] = runs;
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  for (const auto& d : nanguard::bench::grist_defects()) {
    benchmark::RegisterBenchmark(("trigger_guided/" + d.id).c_str(), bm_trigger, d, false)
        ->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
    benchmark::RegisterBenchmark(("trigger_random/" + d.id).c_str(), bm_trigger, d, true)
        ->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
