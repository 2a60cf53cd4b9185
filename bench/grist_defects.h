// The GRIST defects for the benchmarks: each defect's node, its model and case.json,
// and the analysis / load options the case sets (ranges, weight mode, dimensions).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "analyzer/analyzer.h"
#include "model/onnx_loader.h"

namespace nanguard::bench {

struct Defect {
  std::string id, node, model;
  nlohmann::json c;  // case.json
};

// Every defect of corpora/grist (run from the repository root), in program order.
std::vector<Defect> grist_defects();
AnalyzeOptions analyze_options(const Defect& d);
LoadOptions load_options(const Defect& d);

}  // namespace nanguard::bench
