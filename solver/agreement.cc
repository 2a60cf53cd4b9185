#include "solver/agreement.h"

#include <chrono>

#include <algorithm>
#include <limits>

#include <fmt/core.h>

#include "oracle/input_source.h"

namespace nanguard {
namespace {

bool finite(const at::Tensor& t) {
  return !t.defined() || !at::isFloatingType(t.scalar_type()) || t.detach().isfinite().all().item<bool>();
}

// max |f - o| / max |o| over one output; absolute when the original is all zeros.
double relative_change(const at::Tensor& o, const at::Tensor& f) {
  if (!finite(f)) return std::numeric_limits<double>::infinity();
  at::Tensor od = o.detach().to(at::kCPU, at::kDouble), fd = f.detach().to(at::kCPU, at::kDouble);
  if (od.sizes() != fd.sizes()) return std::numeric_limits<double>::infinity();
  if (od.numel() == 0) return 0;
  double diff = (fd - od).abs().max().item<double>(), scale = od.abs().max().item<double>();
  return scale > 0 ? diff / scale : diff;
}

// The largest relative change over the original's outputs, matched by name; nullopt
// when the original is not finite (the sample does not count).
Result<std::optional<double>> compare(const Executor& fixed, const Executor& original, const TensorMap& feeds) {
  auto o = original.run(feeds);
  if (!o.ok()) return o.status();
  for (const auto& t : o->outputs)
    if (!finite(t)) return std::optional<double>();
  auto f = fixed.run(feeds);
  if (!f.ok()) return std::optional<double>(std::numeric_limits<double>::infinity());
  double change = 0;
  const auto& names = fixed.graph().outputs;
  for (size_t i = 0; i < o->outputs.size(); ++i) {
    auto at = std::find(names.begin(), names.end(), original.graph().outputs[i]);
    if (at == names.end()) return Status::Error(fmt::format("{}: no output '{}' as in the original", fixed.graph().model_path,
                                                            original.graph().outputs[i]));
    change = std::max(change, relative_change(o->outputs[i], f->outputs[at - names.begin()]));
  }
  return std::optional<double>(change);
}

TensorMap on_device(const TensorMap& feeds, at::Device device) {
  TensorMap out;
  for (const auto& [name, t] : feeds) out[name] = t.to(device);
  return out;
}

}  // namespace

Result<Agreement> measure_agreement(const Graph& fixed, const Graph& original, const std::vector<TensorMap>& data,
                                    const RangeMap& ranges, int64_t samples, uint64_t seed, at::Device device,
                                    double max_seconds) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(max_seconds);
  ExecOptions eo;
  eo.device = device;
  eo.keep_intermediates = false;
  auto fx = Executor::create(fixed, eo), ox = Executor::create(original, eo);
  if (!fx.ok()) return fx.status();
  if (!ox.ok()) return ox.status();
  Agreement a;
  int64_t n = data.empty() ? samples : static_cast<int64_t>(data.size());
  for (int64_t i = 0; i < n; ++i) {
    if (max_seconds > 0 && i > 0 && std::chrono::steady_clock::now() > deadline) break;  // a.samples says how many ran
    // A seed per draw (random_inputs takes a seed), away from the sampling attack's.
    auto feeds = data.empty() ? random_inputs(original, ranges, seed * 1000003 + 7919 + i) : Result<TensorMap>(data[i]);
    if (!feeds.ok()) return feeds.status();
    auto change = compare(*fx, *ox, on_device(*feeds, device));
    if (!change.ok()) return change.status();
    ++a.samples;
    if (!change->has_value()) continue;
    ++a.original_finite;
    a.unchanged += **change <= kUnchangedTolerance;
    a.max_change = std::max(a.max_change, **change);
  }
  a.share = a.original_finite ? static_cast<double>(a.unchanged) / a.original_finite : 1.0;
  return a;
}

}  // namespace nanguard
