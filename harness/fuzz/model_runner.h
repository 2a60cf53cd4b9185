// fuzz_model's work, apart from libFuzzer's entry points: the configured model, fuzz
// bytes turned into feeds (fuzz_layout.h), the real float32 run, where NaN/INF starts
// (and, when the analyzer reported gradient findings, a backward pass), reproducers.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "harness/fuzz/fuzz_config.h"
#include "model/graph.h"
#include "model/status.h"
#include "oracle/executor.h"

namespace nanguard::fuzz {

struct ModelFailure {
  std::string node, op, hazard;
  std::string kind = "forward";  // or "gradient", "crash"
  int operand = 0;
  std::string detail;
  FailureKey key() const { return {node, hazard}; }
};

class ModelRunner {
 public:
  static Result<std::unique_ptr<ModelRunner>> open(const std::string& dir);

  TensorMap feeds(const uint8_t* data, size_t size) const;
  // Every node where NaN/INF starts in the run on `feeds` (its inputs finite, an
  // output not), in topological order; then gradient findings that fired.
  std::vector<ModelFailure> run(const TensorMap& feeds) const;
  bool accepted(const ModelFailure& f) const { return config_.baseline.count(f.key()) > 0; }
  // out/<node>-<hazard>: the reproducer's folder for a failure.
  std::string reproducer_dir(const std::string& out, const ModelFailure& f) const;
  Status write_reproducer(const ModelFailure& f, const TensorMap& feeds, const std::string& dir) const;

  // Coverage beyond code: per node, which power-of-16 band the largest and smallest
  // magnitudes of its output reached (counters[node * 32 + band], 16 bands each),
  // so that libFuzzer keeps inputs that push a tensor towards overflow or zero.
  void set_magnitude_counters(uint8_t* counters, size_t size) {
    counters_ = counters;
    counters_size_ = size;
  }

  const FuzzConfig& config() const { return config_; }
  const Graph& graph() const { return graph_; }

 private:
  ModelRunner() = default;
  void gradient_failures(const TensorMap& feeds, std::vector<ModelFailure>& out) const;

  FuzzConfig config_;
  Graph graph_;
  std::optional<Executor> exec_;
  std::optional<Executor> grad_exec_;  // keeps intermediates; only with gradient findings
  std::vector<at::Tensor> stored_;  // per slot: the stored weight (float32, contiguous) or undefined
  std::vector<const KnownFinding*> gradient_findings_;
  uint8_t* counters_ = nullptr;
  size_t counters_size_ = 0;
};

}  // namespace nanguard::fuzz
