// Trigger time per GRIST defect: load, analyze and the search for the defect's node,
// until a witness is confirmed by a real float32 run (or the budget ends). The
// baseline, uniform random sampling in the same box, is registered beside it for the
// same defect (`trigger_random/...`). Counters: triggered (1/0), runs (float32 model
// runs). NANGUARD_BENCH_BUDGET sets the budget per defect (seconds, default 60).
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <nlohmann/json.hpp>

#include "model/onnx_loader.h"
#include "solver/trigger.h"

namespace {

namespace fs = std::filesystem;
using namespace nanguard;

struct Defect {
  std::string id, node, model;
  nlohmann::json c;  // case.json
};

TriggerOptions options_for(const Defect& d, bool random_only) {
  TriggerOptions o;
  for (const auto& [name, r] : d.c["inputs"].items()) o.analyze.ranges[name] = Range{r[0].get<double>(), r[1].get<double>()};
  const auto& w = d.c["weights"];
  if (w.value("mode", "fixed") == "free") {
    o.analyze.weights = WeightMode::kFree;
    if (w.contains("range")) o.analyze.weight_range = Range{w["range"][0].get<double>(), w["range"][1].get<double>()};
  }
  o.node = d.node;
  const char* budget = std::getenv("NANGUARD_BENCH_BUDGET");
  o.budget_seconds = budget ? std::atof(budget) : 60;
  o.random_only = random_only;
  return o;
}

void bm_trigger(benchmark::State& state, Defect d, bool random_only) {
  LoadOptions lo;
  for (const auto& [name, n] : d.c.value("dims", nlohmann::json::object()).items()) lo.dims[name] = n.get<int64_t>();
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

std::vector<Defect> grist_defects() {
  std::vector<Defect> out;
  if (!fs::is_directory("corpora/grist")) return out;
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator("corpora/grist"))
    if (fs::exists(e.path() / "case.json") && fs::exists(e.path() / "model.onnx")) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end(), [](const fs::path& a, const fs::path& b) {
    return std::stoi(a.filename().string()) < std::stoi(b.filename().string());
  });
  for (const auto& dir : dirs) {
    std::ifstream in(dir / "case.json");
    nlohmann::json c = nlohmann::json::parse(in);
    for (const auto& d : c["defects"])
      out.push_back({d["id"].get<std::string>(), d["node"].get<std::string>(), (dir / "model.onnx").string(), c});
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  for (const auto& d : grist_defects()) {
    benchmark::RegisterBenchmark(("trigger_guided/" + d.id).c_str(), bm_trigger, d, false)
        ->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
    benchmark::RegisterBenchmark(("trigger_random/" + d.id).c_str(), bm_trigger, d, true)
        ->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
