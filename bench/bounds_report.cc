// How tight the analysis is, layer by layer: for every Conv, Gemm, MatMul, Add and
// Concat output, the analysed bound next to the range one real float32 run reaches
// (inputs drawn uniformly in [0, 1]), plus the findings and the analysis time.
// Usage: nanguard_bounds_report MODEL [SYMBOLIC_WINDOW [SYMBOLIC_BUDGET]]
// (window 0: intervals only). Used for results/symbolic-bounds.md.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "analyzer/analyzer.h"
#include "model/onnx_loader.h"
#include "oracle/executor.h"
#include "oracle/input_source.h"

using namespace nanguard;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL [SYMBOLIC_WINDOW [SYMBOLIC_BUDGET]]\n", argv[0]);
    return 2;
  }
  auto g = load_model(argv[1]);
  if (!g.ok()) { std::fprintf(stderr, "%s\n", g.status().message().c_str()); return 2; }
  AnalyzeOptions opt;
  for (const auto& in : g->inputs) opt.ranges[in] = Range{0, 1};
  if (argc > 2) opt.symbolic_window = std::atoi(argv[2]);
  if (argc > 3) opt.symbolic_budget = static_cast<int64_t>(std::atof(argv[3]));
  auto t0 = std::chrono::steady_clock::now();
  auto r = analyze(*g, opt);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (!r.ok()) { std::fprintf(stderr, "%s\n", r.status().message().c_str()); return 2; }
  std::printf("analyze %.0f ms, %zu findings\n", ms, r->findings.size());
  for (const Finding& f : r->findings) std::printf("finding %s %s\n", f.node.c_str(), f.hazard.c_str());
  auto ex = Executor::create(*g);
  auto feeds = random_inputs(*g, opt.ranges, 0);
  if (!ex.ok() || !feeds.ok()) return 2;
  auto run = ex->run(*feeds);
  if (!run.ok()) return 2;
  static const std::set<std::string> kShown{"Conv", "Gemm", "MatMul", "Add", "Concat"};
  for (const Node& n : g->nodes) {
    if (!kShown.count(n.op_type) || !r->intervals.count(n.outputs[0])) continue;
    const IntervalTensor& iv = r->intervals.at(n.outputs[0]);
    const at::Tensor& v = run->values.at(n.outputs[0]);
    std::printf("%s %s bound [%.3g, %.3g] real [%.3g, %.3g]\n", n.name.c_str(), n.op_type.c_str(), iv.min(), iv.max(),
                v.min().item<double>(), v.max().item<double>());
  }
  return 0;
}
