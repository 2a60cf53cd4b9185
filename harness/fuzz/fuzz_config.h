// The folder that configures fuzz_model for one model (written by `nanguard
// fuzz-config`): config.json (this struct), the model, and model.dict (libFuzzer's
// dictionary). Plain C++ so that the normal build tests the round trip.
#pragma once

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "harness/fuzz/dictionary.h"
#include "harness/fuzz/fuzz_layout.h"
#include "model/status.h"

namespace nanguard::fuzz {

// A finding of the analyzer, kept so that a failure at its node is named by its hazard.
struct KnownFinding {
  std::string node, op, kind, hazard;  // kind: forward, gradient, crash
  int operand = 0;
};

using FailureKey = std::pair<std::string, std::string>;  // (node, hazard)

struct FuzzConfig {
  std::string model = "model.onnx";  // relative to the folder
  std::string source_model;          // the model fuzz-config was given
  std::string weights = "fixed";     // the --weights flag
  std::map<std::string, int64_t> dims;
  FuzzLayout layout;                 // runtime inputs, then free weights
  std::vector<KnownFinding> findings;
  std::set<FailureKey> baseline;     // accepted failures: not reported
  std::vector<DictEntry> dictionary;
};

constexpr const char* kConfigFile = "config.json";
constexpr const char* kDictionaryFile = "model.dict";

std::string config_json(const FuzzConfig& config);
Result<FuzzConfig> parse_config(const std::string& text, const std::string& where);
Result<FuzzConfig> read_config(const std::string& dir);

// The hazard a failure at `node` is reported under: the analyzer's finding there (the
// first forward one, else any), else "nan" / "inf" after what the output holds.
std::string failure_hazard(const FuzzConfig& config, const std::string& node, bool has_nan);

// Baseline entries from a JSON file: a list of {node, hazard}, or a summary.json of
// scripts/fuzz ({"crashes": [...]}).
Result<std::set<FailureKey>> parse_baseline(const std::string& text, const std::string& where);

}  // namespace nanguard::fuzz
