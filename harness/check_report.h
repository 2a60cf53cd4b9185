// `nanguard check`'s reports: report.json (every finding with its verdict, witness,
// fix and validation), SARIF 2.1.0 for code scanning, and the text summary.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/check.h"

namespace nanguard {

// The witness in the user's terms, e.g. "x[0, 3] = 1": per tensor, the elements at an
// end of their range or at 0 (all of them when the tensor is small), at most `limit`.
std::vector<std::string> witness_values(const TriggerOutcome& t, const RangeMap& ranges, size_t limit = 6);

// What the fix changed, one line per narrowed tensor ("x: [0, 1] -> [0.5, 1], keeps 50%").
std::vector<std::string> fix_changes(const FindingFix& fx);

nlohmann::json check_json(const CheckReport& r);
std::string check_text(const CheckReport& r, const std::string& out_dir);
// `fixed_model` (the fixed.onnx bytes, may be empty) becomes each fixed result's
// `fixes` entry when small enough to embed.
std::string check_sarif(const CheckReport& r, const std::string& fixed_model);

}  // namespace nanguard
