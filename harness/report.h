// Report writers for findings: readable text, JSON (top-level `findings`), and
// SARIF 2.1.0 (one rule per hazard, node names as logical locations).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "analyzer/analyzer.h"

namespace nanguard {

struct ReportContext {
  std::string model_path;
  const Graph* graph = nullptr;
  std::string weights;  // "fixed" or "free[...]"
  RangeMap ranges;
  bool gradients_chained = false;  // the backward bound ran (analyzer.h: chains_gradients)
};

// JSON has no infinity: unbounded ends are written as the strings "inf" / "-inf" ("nan").
nlohmann::json json_number(double v);
nlohmann::json finding_json(const Finding& f);
std::string findings_json(const ReportContext& ctx, const AnalysisResult& r);
std::string findings_sarif(const ReportContext& ctx, const AnalysisResult& r);
std::string findings_text(const ReportContext& ctx, const AnalysisResult& r);

}  // namespace nanguard
