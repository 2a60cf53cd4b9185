// `nanguard run --save-failing DIR`: the inputs of the first samples whose run produced
// NaN/INF, each written as a reproducer (harness/reproducer.h's layout, so that
// `nanguard replay DIR/NN-node-hazard` runs it again), NN being the sample's index.
// DIR is built beside itself under a staging name and renamed into place by
// publish(): it appears whole or not at all, and not at all when nothing was saved.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "model/graph.h"
#include "model/status.h"
#include "oracle/nonfinite.h"

namespace nanguard {

struct SavedSample {
  int64_t sample = 0;
  std::string node;    // where NaN/INF starts in that run
  std::string folder;  // DIR/NN-node-hazard (the published path)
};

class FailingSamples {
 public:
  // Refuses a DIR that exists and is not an empty folder, or whose parent folder is
  // missing, before anything runs. `note` says how the samples were drawn (README).
  static Result<std::unique_ptr<FailingSamples>> open(const std::string& dir, int64_t max, std::string note);
  ~FailingSamples();  // removes the staging folder unless published
  FailingSamples(const FailingSamples&) = delete;
  FailingSamples& operator=(const FailingSamples&) = delete;

  // Done after `max` saved samples, or `max` that could not be saved (which bounds
  // the cost on a model whose failures cannot be reproducers).
  bool full() const {
    return static_cast<int64_t>(saved_.size()) >= max_ || static_cast<int64_t>(skipped_.size()) >= max_;
  }
  // Saves `sample` (its run `run` on `feeds`, `device` as run) unless full(), when
  // its failure reproduces in a float32 CPU run; a sample that cannot be saved (its
  // NaN/INF comes from an input or a weight, or does not reproduce on CPU) is listed
  // in skipped() with the reason. Errors are I/O errors.
  Status offer(const Graph& graph, const TensorMap& feeds, const OracleRun& run, int64_t sample,
               const std::string& device);
  // Moves the folder into place when something was saved.
  Status publish();

  const std::vector<SavedSample>& saved() const { return saved_; }
  const std::vector<std::string>& skipped() const { return skipped_; }

 private:
  FailingSamples(std::filesystem::path dir, int64_t max, std::string note)
      : dir_(std::move(dir)), max_(max), note_(std::move(note)) {}
  Status ensure_staging();

  std::filesystem::path dir_, staging_;
  int64_t max_;
  std::string note_;
  bool published_ = false;
  std::vector<SavedSample> saved_;
  std::vector<std::string> skipped_;
};

}  // namespace nanguard
