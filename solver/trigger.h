// Trigger: for every finding of the analyzer (or one node's), the unit target and
// witness, then a system witness within the budget, confirmed by real float32 runs
// of the whole model: on CPU always, and on the other devices asked for (CUDA),
// which are listed where they reproduce it too.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "analyzer/analyzer.h"
#include "model/graph.h"
#include "model/status.h"
#include "solver/system_witness.h"
#include "solver/unit_witness.h"

namespace nanguard {

struct TriggerOptions {
  AnalyzeOptions analyze;
  std::string node;              // only this node's findings; empty: all
  double budget_seconds = 60;    // per finding
  uint64_t seed = 0;
  bool random_only = false;      // the baseline
  // Training-time witnesses instead: one SGD step of this learning rate from the
  // stored weights on an example, then the next forward run fails.
  std::optional<double> training_step;
  // Where witnesses are confirmed: CPU (the reference, always) and any others.
  std::vector<at::Device> devices{at::kCPU};
  // Called before finding `index` of `total` is searched, and once more with index ==
  // total at the end (for progress lines).
  std::function<void(size_t index, size_t total, const Finding* next)> progress;
  // Findings are first re-analysed finer (refutation_options): those it does not report
  // are refuted and not searched.
  bool refute = true;
};

struct TriggerOutcome {
  Finding finding;
  // triggered (a real run fails), refuted (a finer analysis proves it cannot happen:
  // no search spent), or not-triggered (the search gave up).
  std::string status = "not-triggered";
  std::optional<UnitTarget> target;
  std::optional<UnitWitness> unit;
  SystemWitness system;        // point: float32 values of inputs and free weights
  std::vector<std::string> devices;  // where the real run reproduced it
  std::string detail;          // the confirmation, or why not
};

struct TriggerReport {
  std::vector<TriggerOutcome> outcomes;  // the findings' order
  std::vector<std::string> weights;      // names of the free weights in each point
};

Result<TriggerReport> trigger(const Graph& graph, const TriggerOptions& options);

// The finer analysis that refutes findings: symbolic bounds over at least 16 nodes on
// every affine output, with four times the multiply-add budget. Sound like the first,
// only slower, so a finding it does not report cannot happen.
AnalyzeOptions refutation_options(const AnalyzeOptions& o);

// The devices this build can confirm on: CPU, plus CUDA when LibTorch has it.
std::vector<at::Device> available_devices();

}  // namespace nanguard
