#include "harness/failing_samples.h"

#include <unordered_set>

#include <fmt/core.h>
#include <unistd.h>

#include "harness/reproducer.h"
#include "solver/confirm.h"

namespace nanguard {
namespace {

namespace fs = std::filesystem;

// The nodes where NaN/INF is born in `run` (oracle/nonfinite.h), once each: the nodes
// solver/confirm.h accepts as a forward witness's node.
std::vector<const NonFiniteRecord*> origins(const OracleRun& run) {
  std::vector<const NonFiniteRecord*> out;
  for (const auto& r : run.nonfinite)
    if (r.born && (out.empty() || out.back()->node != r.node)) out.push_back(&r);
  return out;
}

Finding finding_of(const NonFiniteRecord& r) {
  Finding f;
  f.node = r.node;
  f.op_type = r.op_type;
  f.kind = HazardKind::kForward;
  f.hazard = r.nan_count ? "nan" : "inf";  // as fuzz_model names a failure no finding names
  f.condition = fmt::format("{} NaN, {} INF of {} values in '{}'", r.nan_count, r.inf_count, r.numel, r.tensor);
  f.status = "definite";
  return f;
}

}  // namespace

Result<std::unique_ptr<FailingSamples>> FailingSamples::open(const std::string& dir, int64_t max, std::string note) {
  std::string d = dir;
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  fs::path path(d);
  std::error_code ec;
  if (fs::exists(path, ec) && (!fs::is_directory(path, ec) || !fs::is_empty(path, ec)))
    return Status::Error(fmt::format("--save-failing {}: exists and is not an empty folder; give a new or empty one", dir));
  fs::path parent = path.has_parent_path() ? path.parent_path() : fs::path(".");
  if (!fs::is_directory(parent, ec)) return Status::Error(fmt::format("--save-failing {}: no such folder: {}", dir, parent.string()));
  return std::unique_ptr<FailingSamples>(new FailingSamples(path, max, std::move(note)));
}

FailingSamples::~FailingSamples() {
  std::error_code ec;
  if (!published_ && !staging_.empty()) fs::remove_all(staging_, ec);
}

Status FailingSamples::ensure_staging() {
  if (!staging_.empty()) return Status::Ok();
  fs::path parent = dir_.has_parent_path() ? dir_.parent_path() : fs::path(".");
  fs::path tmp = parent / fmt::format(".{}.partial-{}", dir_.filename().string(), getpid());
  std::error_code ec;
  fs::remove_all(tmp, ec);
  if (!fs::create_directory(tmp, ec))
    return Status::Error(fmt::format("{}: cannot create folder: {}", tmp.string(), ec.message()));
  staging_ = tmp;
  return Status::Ok();
}

Status FailingSamples::offer(const Graph& graph, const TensorMap& feeds, const OracleRun& run, int64_t sample,
                             const std::string& device) {
  if (full() || !run.first()) return Status::Ok();
  std::vector<const NonFiniteRecord*> candidates = origins(run);
  std::string why = "its NaN/INF comes from an input or a weight, not from a node";
  for (const NonFiniteRecord* r : candidates) {
    Finding f = finding_of(*r);
    // The reproducer is a float32 CPU run: a failure seen only on another device (or
    // through a random op's other stream) is not saved as one.
    auto c = confirm_witness(graph, f, 0, feeds, at::kCPU);
    if (!c.ok()) return c.status();
    if (!c->reproduced) {
      why = fmt::format("'{}' does not fail in a float32 CPU run: {}", r->node, c->detail);
      continue;
    }
    if (Status s = ensure_staging(); !s.ok()) return s;
    std::vector<std::string> devices{"cpu"};
    if (device != "cpu") devices.insert(devices.begin(), device);
    ReproducerSpec spec{f, 0, feeds, devices, "sampling", graph.model_path,
                        fmt::format("{} This is run {} of them.", note_, sample)};
    std::string name = reproducer_dir_name(static_cast<size_t>(sample), f);
    if (Status s = write_reproducer(graph, spec, (staging_ / name).string()); !s.ok()) return s;
    saved_.push_back({sample, r->node, (dir_ / name).string()});
    return Status::Ok();
  }
  skipped_.push_back(fmt::format("run {}: not saved: {}", sample, why));
  return Status::Ok();
}

Status FailingSamples::publish() {
  if (staging_.empty() || saved_.empty()) return Status::Ok();
  std::error_code ec;
  if (fs::exists(dir_, ec) && fs::is_directory(dir_, ec) && fs::is_empty(dir_, ec)) fs::remove(dir_, ec);
  fs::rename(staging_, dir_, ec);
  if (ec) return Status::Error(fmt::format("{}: cannot move the saved samples into place: {}", dir_.string(), ec.message()));
  published_ = true;
  return Status::Ok();
}

}  // namespace nanguard
