#include "solver/validate.h"

#include <algorithm>
#include <chrono>

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/core.h>

#include "oracle/nonfinite.h"
#include "solver/search_space.h"
#include "solver/trigger.h"

namespace nanguard {
namespace {

using Clock = std::chrono::steady_clock;

bool finite(const at::Tensor& t) {
  return !t.defined() || !at::isFloatingType(t.scalar_type()) || t.detach().isfinite().all().item<bool>();
}

std::string device_name(at::Device d) { return d.is_cuda() ? "cuda" : "cpu"; }

TensorMap on_device(const TensorMap& feeds, at::Device device) {
  TensorMap out;
  for (const auto& [name, t] : feeds) out[name] = t.to(device);
  return out;
}

// As confirm.h: the scalar float output, else the sum of the float outputs.
at::Tensor backward_root(const ExecResult& exec) {
  at::Tensor total;
  for (const auto& o : exec.outputs) {
    if (!o.defined() || !at::isFloatingType(o.scalar_type()) || !o.requires_grad()) continue;
    if (o.numel() == 1) return o.sum();
    total = total.defined() ? total + o.sum() : o.sum();
  }
  return total;
}

// Every float feed and weight is a leaf requiring grad; the first NaN/INF gradient.
std::string backward_failure(const Executor& ex, TensorMap feeds) {
  for (auto& [name, t] : feeds)
    if (at::isFloatingType(t.scalar_type())) t = t.detach().clone().requires_grad_(true);
  for (const auto& [name, w] : ex.weights())
    if (!feeds.count(name) && at::isFloatingType(w.scalar_type())) feeds[name] = w.detach().clone().requires_grad_(true);
  auto exec = ex.run(feeds);
  if (!exec.ok()) return fmt::format("the run failed: {}", exec.status().message());
  at::Tensor root = backward_root(*exec);
  if (!root.defined()) return "";
  root.backward();
  for (const auto& [name, t] : feeds)
    if (t.requires_grad() && t.grad().defined() && !finite(t.grad())) return fmt::format("the gradient of '{}'", name);
  return "";
}

// Empty when the run is finite everywhere: the oracle's nodes, the outputs, and
// for gradient findings the backward pass.
std::string point_failure(const Executor& ex, const TensorMap& feeds, bool gradient) {
  auto run = run_with_oracle(ex, feeds);
  if (!run.ok()) return fmt::format("the run failed: {}", run.status().message());
  if (const NonFiniteRecord* r = run->first())
    return fmt::format("node '{}' ({}): {} NaN, {} INF", r->node, r->op_type, r->nan_count, r->inf_count);
  for (size_t i = 0; i < run->exec.outputs.size(); ++i)
    if (!finite(run->exec.outputs[i])) return fmt::format("output '{}'", ex.graph().outputs[i]);
  return gradient ? backward_failure(ex, feeds) : "";
}

void record(AttackResult& a, const std::string& failure, const std::string& where = "") {
  ++a.runs;
  if (failure.empty()) return;
  if (a.failures++ == 0) a.first_failure = fmt::format("{} at run {}{}", failure, a.runs, where);
}

Result<Executor> executor(const Graph& g, at::Device device) {
  ExecOptions eo;
  eo.device = device;
  return Executor::create(g, eo);
}

// The fixed model's runtime inputs from `feeds`, plus the weights it shares by name
// and shape (free weights only: fixed weights are the proof's premise).
Result<TensorMap> feeds_for(const Graph& fixed, const TensorMap& feeds, const AnalyzeOptions& ao, const std::string& what) {
  TensorMap out;
  for (const auto& name : fixed.inputs) {
    auto it = feeds.find(name);
    if (it == feeds.end()) return Status::Error(fmt::format("{}: no value for input '{}' of {}", what, name, fixed.model_path));
    const TensorType* type = fixed.type_of(name);
    bool known = type && type->dims && std::none_of(type->dims->begin(), type->dims->end(), [](int64_t d) { return d < 0; });
    if (known && it->second.sizes().vec() != *type->dims)
      return Status::Error(fmt::format("{}: input '{}' has another shape than in {}", what, name, fixed.model_path));
    out[name] = it->second;
  }
  if (ao.weights != WeightMode::kFree) return out;
  for (const auto& [name, t] : feeds) {
    auto w = fixed.initializers.find(name);
    if (w == fixed.initializers.end() || out.count(name)) continue;
    std::vector<int64_t> dims(w->second.dims().begin(), w->second.dims().end());
    if (t.sizes().vec() == dims && is_trainable(fixed, name, t)) out[name] = t;
  }
  return out;
}

Result<AttackResult> reproducer_attack(const Graph& fixed, const ValidateOptions& o) {
  AttackResult a{"reproducers"};
  for (at::Device d : available_devices()) {
    auto ex = executor(fixed, d);
    if (!ex.ok()) return ex.status();
    for (const ReplayCase& c : o.reproducers) {
      auto feeds = feeds_for(fixed, c.feeds, o.analyze, c.name);
      if (!feeds.ok()) return feeds.status();
      bool gradient = c.finding.kind == HazardKind::kGradient;
      record(a, point_failure(*ex, on_device(*feeds, d), gradient), fmt::format(" (reproducer {} on {})", c.name, device_name(d)));
    }
  }
  return a;
}

Result<AttackResult> sampling_attack(const Graph& fixed, const ValidateOptions& o, Clock::time_point deadline) {
  AttackResult a{"sampling"};
  auto space = make_search_space(fixed, o.analyze);
  if (!space.ok()) return space.status();
  auto ex = executor(fixed, o.device);
  if (!ex.ok()) return ex.status();
  at::Generator gen = at::detail::createCPUGenerator(o.seed);
  for (int64_t i = 0; i < o.samples && (i == 0 || Clock::now() < deadline); ++i) {
    TensorMap feeds = space->feeds(space->sample(gen), fixed, at::kFloat);
    record(a, point_failure(*ex, on_device(feeds, o.device), false));
  }
  return a;
}

TriggerOptions trigger_options(const ValidateOptions& o, double per_finding, bool random_only) {
  TriggerOptions t;
  t.analyze = o.analyze;
  t.budget_seconds = std::max(per_finding, 0.05);
  t.seed = o.seed;
  t.random_only = random_only;
  if (o.device.is_cuda()) t.devices.push_back(o.device);
  return t;
}

// trigger on the fixed model's own findings: a witness breaks the fix.
Result<AttackResult> trigger_attack(const Graph& fixed, const ValidateOptions& o, double seconds, size_t findings,
                                    bool random_only) {
  AttackResult a{random_only ? "trigger-random" : "trigger-guided"};
  auto r = trigger(fixed, trigger_options(o, seconds / findings, random_only));
  if (!r.ok()) return r.status();
  for (const TriggerOutcome& out : r->outcomes) {
    a.runs += out.system.runs;
    if (out.status != "triggered") continue;
    if (a.failures++ == 0)
      a.first_failure = fmt::format("node '{}' ({}) at run {}", out.finding.node, out.finding.hazard, a.runs);
  }
  return a;
}

// The original's guided witnesses, fed to the fixed model: each must now run finite.
Result<AttackResult> witness_attack(const Graph& fixed, const Graph& original, const ValidateOptions& o, double seconds,
                                    size_t findings) {
  AttackResult a{"original-witnesses"};
  auto r = trigger(original, trigger_options(o, seconds / findings, false));
  if (!r.ok()) return r.status();
  auto space = make_search_space(original, o.analyze);
  if (!space.ok()) return space.status();
  auto ex = executor(fixed, o.device);
  if (!ex.ok()) return ex.status();
  for (const TriggerOutcome& out : r->outcomes) {
    if (!out.system.found) continue;
    std::string what = fmt::format("the witness of '{}'", out.finding.node);
    auto feeds = feeds_for(fixed, space->feeds(out.system.point, original, at::kFloat), o.analyze, what);
    if (!feeds.ok()) return feeds.status();
    bool gradient = out.finding.kind == HazardKind::kGradient;
    record(a, point_failure(*ex, on_device(*feeds, o.device), gradient), " (" + what + ")");
  }
  return a;
}

Status check_interface(const Graph& fixed, const Graph& original) {
  if (fixed.inputs != original.inputs || fixed.outputs != original.outputs)
    return Status::Error(fmt::format("{}: its inputs and outputs are not those of the original {}", fixed.model_path,
                                     original.model_path));
  return Status::Ok();
}

// Share of the time left for one phase, by weight among the phases still to come.
double share(Clock::time_point deadline, double weight, double weights_left) {
  double left = std::chrono::duration<double>(deadline - Clock::now()).count();
  return std::max(left, 0.0) * weight / weights_left;
}

}  // namespace

int64_t ValidationReport::runs() const {
  int64_t n = 0;
  for (const auto& a : attacks) n += a.runs;
  return n;
}

int64_t ValidationReport::failures() const {
  int64_t n = 0;
  for (const auto& a : attacks) n += a.failures;
  return n;
}

std::string ValidationReport::verdict() const { return failures() ? "broken" : proved() ? "holds" : "unproved"; }

Result<std::string> first_nonfinite(const Graph& graph, const TensorMap& feeds, bool gradient, at::Device device) {
  auto ex = executor(graph, device);
  if (!ex.ok()) return ex.status();
  return point_failure(*ex, on_device(feeds, device), gradient);
}

// Phases in order, each taking a weighted share of the time left: sampling (at most
// `samples` runs), the original's witnesses, guided then random search on the fixed
// model's findings. Reproducers and agreement are counted, not timed.
Result<ValidationReport> validate_fix(const Graph& fixed, const Graph* original, const ValidateOptions& o) {
  Clock::time_point deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                  std::chrono::duration<double>(o.budget_seconds));
  if (original)
    if (Status s = check_interface(fixed, *original); !s.ok()) return s;
  ValidationReport report;
  auto analysis = analyze(fixed, o.analyze);
  if (!analysis.ok()) return analysis.status();
  report.analysis = std::move(*analysis);
  size_t fixed_findings = report.analysis.findings.size(), original_findings = 0;
  if (original) {
    auto oa = analyze(*original, o.analyze);
    if (!oa.ok()) return oa.status();
    original_findings = oa->findings.size();
  }
  double w_witness = original_findings ? 1 : 0, w_trigger = fixed_findings ? 1.5 : 0;
  if (!o.reproducers.empty()) {
    auto a = reproducer_attack(fixed, o);
    if (!a.ok()) return a.status();
    report.attacks.push_back(*a);
  }
  auto sampling = sampling_attack(fixed, o, Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                std::chrono::duration<double>(share(deadline, 1, 1 + w_witness + w_trigger))));
  if (!sampling.ok()) return sampling.status();
  report.attacks.push_back(*sampling);
  if (w_witness) {
    auto a = witness_attack(fixed, *original, o, share(deadline, w_witness, w_witness + w_trigger), original_findings);
    if (!a.ok()) return a.status();
    report.attacks.push_back(*a);
  }
  if (w_trigger) {
    auto guided = trigger_attack(fixed, o, share(deadline, 1, 1.5), fixed_findings, false);
    if (!guided.ok()) return guided.status();
    report.attacks.push_back(*guided);
    auto random = trigger_attack(fixed, o, share(deadline, 1, 1), fixed_findings, true);
    if (!random.ok()) return random.status();
    report.attacks.push_back(*random);
  }
  if (original) {
    auto ag = measure_agreement(fixed, *original, o.data, o.analyze.ranges, o.samples, o.seed, o.device,
                                o.agreement_seconds);
    if (!ag.ok()) return ag.status();
    report.agreement = *ag;
  }
  return report;
}

}  // namespace nanguard
