// Analysis time per model (load + analyze), with the concrete forward run of the same
// model measured in the same process as the baseline. Models come from the command
// line (after the benchmark flags) or, by default, the demo model, every corpus case
// found under corpora/grist, and the zoo models exported into corpora/zoo/cache.
#include <filesystem>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "analyzer/analyzer.h"
#include "model/onnx_loader.h"
#include "oracle/executor.h"
#include "oracle/input_source.h"

namespace {

namespace fs = std::filesystem;
using namespace nanguard;

void bm_analyze(benchmark::State& state, std::string path) {
  for (auto _ : state) {
    auto g = load_model(path);
    if (!g.ok()) { state.SkipWithError(g.status().message().c_str()); return; }
    AnalyzeOptions opt;
    for (const auto& in : g->inputs) opt.ranges[in] = Range{0, 1};
    auto r = analyze(*g, opt);
    if (!r.ok()) { state.SkipWithError(r.status().message().c_str()); return; }
    benchmark::DoNotOptimize(r->findings.size());
  }
}

void bm_load(benchmark::State& state, std::string path) {
  for (auto _ : state) {
    auto g = load_model(path);
    if (!g.ok()) { state.SkipWithError(g.status().message().c_str()); return; }
    benchmark::DoNotOptimize(g->nodes.size());
  }
}

void bm_forward(benchmark::State& state, std::string path) {
  auto g = load_model(path);
  if (!g.ok()) { state.SkipWithError(g.status().message().c_str()); return; }
  auto ex = Executor::create(*g);
  if (!ex.ok()) { state.SkipWithError(ex.status().message().c_str()); return; }
  RangeMap ranges;
  for (const auto& in : g->inputs) ranges[in] = Range{0, 1};
  auto feeds = random_inputs(*g, ranges, 0);
  if (!feeds.ok()) { state.SkipWithError(feeds.status().message().c_str()); return; }
  for (auto _ : state) {
    auto r = ex->run(*feeds);
    benchmark::DoNotOptimize(r.ok());
  }
}

std::vector<std::string> default_models() {
  std::vector<std::string> models{"corpora/demo/model.onnx"};
  std::vector<std::string> found;
  if (fs::is_directory("corpora/grist"))
    for (const auto& e : fs::directory_iterator("corpora/grist"))
      if (fs::exists(e.path() / "model.onnx")) found.push_back((e.path() / "model.onnx").string());
  if (fs::is_directory("corpora/zoo/cache"))
    for (const auto& e : fs::directory_iterator("corpora/zoo/cache"))
      if (fs::exists(e.path() / "plain.onnx")) found.push_back((e.path() / "plain.onnx").string());
  std::sort(found.begin(), found.end());
  models.insert(models.end(), found.begin(), found.end());
  return models;
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  std::vector<std::string> models(argv + 1, argv + argc);
  if (models.empty()) models = default_models();
  for (const auto& m : models) {
    benchmark::RegisterBenchmark(("analyze/" + m).c_str(), bm_analyze, m)->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime()->UseRealTime();
    benchmark::RegisterBenchmark(("load/" + m).c_str(), bm_load, m)->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime()->UseRealTime();
    benchmark::RegisterBenchmark(("forward/" + m).c_str(), bm_forward, m)->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime()->UseRealTime();
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
