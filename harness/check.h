// `nanguard check`'s pipeline: analyze, trigger every finding, fix (auto), validate
// the fix, and the verdict per finding; the reports are written from CheckReport
// (check_report.h, html_report.h).
#pragma once

#include <algorithm>

#include <optional>
#include <string>
#include <vector>

#include "analyzer/analyzer.h"
#include "harness/progress.h"
#include "model/onnx_loader.h"
#include "solver/fix.h"
#include "solver/trigger.h"
#include "solver/validate.h"

namespace nanguard {

struct CheckOptions {
  AnalyzeOptions analyze;
  LoadOptions load;
  std::string weights_flag = "fixed";  // as given, for the reports
  double budget_seconds = 10;          // trigger's search per finding; validation attacks, all together
  int64_t samples = 200;               // validation's sampling and agreement draws
  std::string out_dir;                 // empty: reproducers are kept in memory only
  std::vector<at::Device> devices{at::kCPU};
  Progress* progress = nullptr;
};

struct CheckFinding {
  Finding finding;
  // fixed (a fix proved and validated), triggered (a real run fails), refuted (a finer
  // analysis proves it unreachable), not-triggered (searched, no witness), possible
  // (not searched).
  std::string status = "possible";
  std::optional<TriggerOutcome> trigger;
  std::string reproducer;  // the reproducer folder, relative to the output folder
  std::string onnxruntime;  // with --ort: "reproduced", "not-reproduced" or "n/a: why"
  std::optional<FindingFix> fix;
};

struct CheckReport {
  std::string model_path, weights;
  RangeMap ranges;
  AnalysisResult analysis;  // of the model as given
  std::vector<CheckFinding> findings;
  std::optional<FixReport> fix;
  std::optional<Graph> fixed_graph;
  std::optional<ValidationReport> validation;
  bool fixed_written = false;  // fixed.onnx in the output folder
  double seconds = 0;

  // Every finding of the first analysis refuted by the finer one (or none at all).
  bool proved() const {
    return analysis.unsupported.empty() &&
           std::all_of(findings.begin(), findings.end(), [](const CheckFinding& f) { return f.status == "refuted"; });
  }
  size_t refuted() const {
    return std::count_if(findings.begin(), findings.end(), [](const CheckFinding& f) { return f.status == "refuted"; });
  }
  bool fix_holds() const { return validation && validation->verdict() == "holds"; }
};

// `proto` is the file `graph` was loaded from. With options.out_dir, reproducers/
// and fixed.onnx are written under it (the caller writes the reports).
Result<CheckReport> run_check(const onnx::ModelProto& proto, const Graph& graph, const CheckOptions& options);

}  // namespace nanguard
