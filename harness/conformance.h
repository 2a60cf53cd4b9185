// Runs ONNX backend node tests (model.onnx + test_data_set_*/input_N.pb, output_N.pb)
// through the executor and compares with the expected outputs.
#pragma once

#include <set>
#include <string>
#include <vector>

namespace nanguard {

enum class Verdict { kPassed, kFailed, kSkipped };

struct ConformanceResult {
  std::string test;  // "<suite>/<test dir>", e.g. "node/test_abs"
  std::set<std::string> op_types;
  Verdict verdict = Verdict::kSkipped;
  std::string reason;  // why it failed or was skipped
};

struct ConformanceOptions {
  double rtol = 1e-3;  // the ONNX backend tests' default tolerances
  double atol = 1e-7;
};

// `dir` holds model.onnx; `label` names the test in reports.
ConformanceResult run_conformance_test(const std::string& dir, const std::string& label,
                                       const ConformanceOptions& options = {});

// Every test folder under each suite folder, sorted.
std::vector<std::pair<std::string, std::string>> list_conformance_tests(const std::vector<std::string>& suites);

}  // namespace nanguard
