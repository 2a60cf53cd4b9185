// Fix time per GRIST defect: load the model, then `fix_model` for the defect's node
// (auto: a rewrite or an immediate clip, each proved by re-analysis), in process.
// The baseline measured in the same run is the analysis alone (`analyze/...`), so a
// noisy machine shows as a ratio. Counters: fixed (1/0 for the defect's finding).
#include <string>

#include <benchmark/benchmark.h>

#include "bench/grist_defects.h"
#include "model/patch.h"
#include "solver/fix.h"

namespace {

using namespace nanguard;
using nanguard::bench::Defect;

void bm_fix(benchmark::State& state, Defect d, FixMode mode) {
  FixOptions opt;
  opt.analyze = nanguard::bench::analyze_options(d);
  opt.load = nanguard::bench::load_options(d);
  opt.mode = mode;
  opt.node = d.node;
  double fixed = 0;
  for (auto _ : state) {
    auto raw = ModelPatch::read(d.model);
    auto g = load_model(d.model, opt.load);
    if (!raw.ok() || !g.ok()) { state.SkipWithError("cannot load the model"); return; }
    auto r = fix_model(raw->proto(), *g, opt);
    if (!r.ok()) { state.SkipWithError(r.status().message().c_str()); return; }
    fixed = 0;
    for (const auto& fx : r->fixes) fixed += fx.finding.node == d.node && fx.status == "fixed";
  }
  state.counters["fixed"] = fixed > 0;
}

void bm_analyze(benchmark::State& state, Defect d) {
  AnalyzeOptions opt = nanguard::bench::analyze_options(d);
  LoadOptions lo = nanguard::bench::load_options(d);
  for (auto _ : state) {
    auto g = load_model(d.model, lo);
    if (!g.ok()) { state.SkipWithError(g.status().message().c_str()); return; }
    auto a = analyze(*g, opt);
    if (!a.ok()) { state.SkipWithError(a.status().message().c_str()); return; }
    benchmark::DoNotOptimize(a->findings.size());
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  for (const auto& d : nanguard::bench::grist_defects()) {
    benchmark::RegisterBenchmark(("fix_auto/" + d.id).c_str(), bm_fix, d, FixMode::kAuto)
        ->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
    benchmark::RegisterBenchmark(("fix_immediate/" + d.id).c_str(), bm_fix, d, FixMode::kImmediate)
        ->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
    benchmark::RegisterBenchmark(("analyze/" + d.id).c_str(), bm_analyze, d)
        ->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
