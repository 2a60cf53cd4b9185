#include "harness/soundness.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <unordered_map>
#include <unordered_set>

#include <fmt/core.h>

#include "oracle/nonfinite.h"

namespace nanguard {
namespace {

// Sample 0 takes every lower bound, sample 1 every upper bound, sample 2 mixes in
// float32 edge values that lie in range (0, -0, the smallest subnormals, +-1);
// the rest are uniform draws inside each cell.
at::Tensor draw(const IntervalTensor& t, int64_t sample, at::Generator& gen) {
  at::Tensor lo = t.full_lo(), hi = t.full_hi();
  at::Tensor finite_lo = lo.clamp(-kFloat32Max, kFloat32Max), finite_hi = hi.clamp(-kFloat32Max, kFloat32Max);
  at::Tensor v;
  if (sample == 0) v = finite_lo.clone();
  else if (sample == 1) v = finite_hi.clone();
  else v = finite_lo + (finite_hi - finite_lo) * at::empty(lo.sizes(), at::kDouble).uniform_(0, 1, gen);
  if (sample == 2) {
    static const double edges[] = {0.0, -0.0, kFloat32MinSubnormal, -kFloat32MinSubnormal, 1.0, -1.0};
    at::Tensor pick = at::empty(lo.sizes(), at::kLong).random_(0, 12, gen);
    for (int i = 0; i < 6; ++i) {
      at::Tensor use = (pick == i).logical_and(lo <= edges[i]).logical_and(hi >= edges[i]);
      v = at::where(use, at::full_like(v, edges[i]), v);
    }
  }
  if (!t.is_float()) v = v.round().clamp(lo.ceil(), hi.floor());
  at::Tensor out = v.to(t.dtype);
  // float32 rounding of a draw may step outside a cell: pull it back inside.
  if (t.dtype == at::kFloat) out = at::where(out.to(at::kDouble) < lo, lo.to(at::kFloat).nextafter(at::full_like(out, INFINITY)), out);
  if (t.dtype == at::kFloat) out = at::where(out.to(at::kDouble) > hi, hi.to(at::kFloat).nextafter(at::full_like(out, -INFINITY)), out);
  return out;
}

// Nodes at or downstream of a finding (of `hazard` only, when given): NaN/INF there
// is explained. A finding inside a subgraph ("Loop_0/body/Log_3") explains its
// control-flow node's outputs.
std::unordered_set<std::string> explained_tensors(const Graph& g, const AnalysisResult& r,
                                                  const std::string& hazard = "") {
  std::unordered_set<std::string> flagged_nodes, tensors;
  for (const auto& f : r.findings)
    if (hazard.empty() || f.hazard == hazard) flagged_nodes.insert(f.node);
  for (const Node& n : g.nodes) {
    bool hit = flagged_nodes.count(n.name) > 0;
    for (const auto& f : r.findings)
      hit |= (hazard.empty() || f.hazard == hazard) && !n.subgraphs.empty() && f.node.rfind(n.name + "/", 0) == 0;
    for (const auto& in : n.inputs) hit |= tensors.count(in) > 0;
    for (const auto& in : implicit_inputs(n)) hit |= tensors.count(in) > 0;
    if (hit) tensors.insert(n.outputs.begin(), n.outputs.end());
  }
  return tensors;
}

// `fired` turns true once a reported hazard really produced NaN/INF in this run:
// from then on, tensors downstream of findings are off the safe state the bounds
// describe, and are not compared.
// `unmodelled`: tensors at or after an op reported `unsupported`, whose shape the
// analysis does not claim either (a Resize over ranged scales).
void compare_node(const Node& node, const std::vector<at::Tensor>& outs, const AnalysisResult& r,
                  const std::unordered_set<std::string>& explained, const std::unordered_set<std::string>& unmodelled,
                  int64_t sample, bool& fired, SoundnessReport& rep) {
  for (size_t i = 0; i < outs.size() && i < node.outputs.size(); ++i) {
    const std::string& name = node.outputs[i];
    auto it = r.intervals.find(name);
    if (it == r.intervals.end() || !outs[i].defined() || !it->second.lo.defined()) continue;
    at::Tensor v = outs[i].detach().to(at::kCPU).to(at::kDouble);
    const IntervalTensor& b = it->second;
    if (v.sizes().vec() != b.shape) {
      if (unmodelled.count(name)) continue;
      rep.violations.push_back({sample, node.name, name, 0, 0, 0, "shape differs from the analysis"});
      continue;
    }
    // An infinity inside the bounds is a deliberate one carried along (a -inf mask), and
    // is compared as a value; NaN, or an infinity the bounds exclude, is not.
    at::Tensor carried = v.isinf().logical_and(v >= b.full_lo()).logical_and(v <= b.full_hi());
    at::Tensor nonfinite = v.isfinite().logical_not().logical_and(carried.logical_not());
    if (nonfinite.any().item<bool>()) {
      if (!explained.count(name))
        rep.violations.push_back({sample, node.name, name, v.masked_select(nonfinite)[0].item<double>(), b.min(), b.max(), "unreported NaN/INF"});
      fired = true;
      continue;
    }
    if (fired && explained.count(name)) continue;
    at::Tensor out = (v < b.full_lo()).logical_or(v > b.full_hi());
    rep.checked_values += v.numel();
    if (out.any().item<bool>()) {
      int64_t k = out.reshape({-1}).nonzero()[0].item<int64_t>();
      rep.violations.push_back({sample, node.name, name, v.reshape({-1})[k].item<double>(),
                                b.full_lo().reshape({-1})[k].item<double>(), b.full_hi().reshape({-1})[k].item<double>(), "out of bounds"});
    }
  }
}

// A run that stops: explained when the node its error names has a crash finding (or is
// downstream of a finding); otherwise an unpredicted crash, a violation.
void judge_crash(const Status& error, const Graph& graph, const AnalysisResult& r,
                 const std::unordered_set<std::string>& explained, int64_t sample, SoundnessReport& rep) {
  const std::string& m = error.message();
  for (const Node& n : graph.nodes) {
    if (m.find("'" + n.name + "'") == std::string::npos) continue;
    for (const auto& f : r.findings)
      if (f.node == n.name && f.kind == HazardKind::kCrash) return;
    for (const auto& out : n.outputs)
      if (explained.count(out)) return;
    rep.violations.push_back({sample, n.name, "", 0, 0, 0, "unreported crash: " + m});
    return;
  }
  rep.violations.push_back({sample, "", "", 0, 0, 0, "unreported crash: " + m});
}

// The model's scalar float output, else the sum of its float outputs.
at::Tensor loss_of(const ExecResult& exec) {
  at::Tensor total;
  for (const auto& o : exec.outputs) {
    if (!o.defined() || !at::isFloatingType(o.scalar_type()) || !o.requires_grad()) continue;
    if (o.numel() == 1 && exec.outputs.size() > 1) return o.sum();
    total = total.defined() ? total + o.sum() : o.sum();
  }
  return total;
}

bool finite_or_none(const at::Tensor& g) { return !g.defined() || g.isfinite().all().item<bool>(); }

void mark_upstream(const Graph& graph, const Node& node, std::unordered_set<std::string>& flagged) {
  std::vector<const Node*> todo{&node};
  while (!todo.empty()) {
    const Node* n = todo.back();
    todo.pop_back();
    for (const auto& in : n->inputs)
      if (const Node* p = in.empty() ? nullptr : graph.producer(in); p && flagged.insert(p->name).second) todo.push_back(p);
  }
}

// After a forward run that stayed finite: a backward pass from the loss. A NaN/INF
// gradient born at a node (its outputs' gradients finite, an input's not) that has no
// finding is a violation: every gradient hazard must be flagged. A tensor's gradient
// sums over its consumers, so it is born at this node only when no other consumer
// is flagged or passes a NaN/INF gradient back.
void check_gradients(const Graph& graph, const ExecResult& exec, const AnalysisResult& r, int64_t sample,
                     SoundnessReport& rep) {
  at::Tensor loss = loss_of(exec);
  if (!loss.defined() || !loss.requires_grad() || !std::isfinite(loss.item<double>())) return;
  loss.backward();
  std::unordered_set<std::string> flagged;
  for (const auto& f : r.findings) flagged.insert(f.node);
  // `gradient-unbounded` says the gradients before its node are not proved, and the
  // chained bound (analyzer/gradient_bounds.h) continues past a finding as the
  // forward analysis continues on the safe state: an overflow upstream of a finding
  // is its echo. Every node upstream of a finding is covered.
  for (const auto& f : r.findings)
    if (const Node* n = graph.find_node(f.node)) mark_upstream(graph, *n, flagged);
  auto clean = [&](const Node& n) {
    if (flagged.count(n.name)) return false;
    for (const auto& o : n.outputs)
      if (auto it = exec.values.find(o); it != exec.values.end() && !finite_or_none(it->second.grad())) return false;
    return true;
  };
  for (const auto& [name, v] : exec.values)
    if (v.defined() && v.grad().defined()) rep.gradient_values += v.grad().numel();
  std::unordered_map<std::string, std::vector<const Node*>> consumers;
  for (const Node& n : graph.nodes)
    for (const auto& in : n.inputs) consumers[in].push_back(&n);
  for (const Node& n : graph.nodes) {
    if (!clean(n)) continue;
    for (const auto& in : n.inputs) {
      auto it = exec.values.find(in);
      if (in.empty() || it == exec.values.end() || finite_or_none(it->second.grad())) continue;
      const auto& all = consumers[in];
      if (!std::all_of(all.begin(), all.end(), [&](const Node* c) { return clean(*c); })) continue;
      rep.violations.push_back({sample, n.name, in, 0, 0, 0, "unreported NaN/INF gradient"});
      return;
    }
  }
}

}  // namespace

Result<SoundnessReport> check_soundness(const Graph& graph, const AnalyzeOptions& options, int64_t samples, uint64_t seed,
                                        double budget_seconds) {
  auto start = std::chrono::steady_clock::now();
  // The backward pass is checked against the chained claim: on its own the local
  // hazards claim nothing of a gradient the ops after it scale. Under an explicit
  // --gradients local only forward values (and crashes) are checked.
  AnalyzeOptions claimed = options;
  if (claimed.gradients == GradientMode::kAuto) claimed.gradients = GradientMode::kChain;
  bool backward = claimed.gradients == GradientMode::kChain;
  auto analysis = analyze(graph, claimed);
  if (!analysis.ok()) return analysis.status();
  auto init = initial_intervals(graph, options);
  if (!init.ok()) return init.status();
  ExecOptions eopt;
  eopt.float_type = options.float_type;
  auto ex = Executor::create(graph, eopt);
  if (!ex.ok()) return ex.status();
  auto explained = explained_tensors(graph, *analysis);
  auto unmodelled = explained_tensors(graph, *analysis, "unsupported");
  at::Generator gen = at::detail::createCPUGenerator(seed);
  SoundnessReport rep;
  for (int64_t s = 0; s < samples; ++s) {
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (budget_seconds > 0 && s >= 3 && elapsed > budget_seconds) break;  // corners always run
    TensorMap feeds;
    for (const auto& [name, iv] : *init)
      if (!iv.exact()) feeds[name] = draw(iv, s, gen);
    for (auto& [name, t] : feeds)
      if (at::isFloatingType(t.scalar_type())) t = t.requires_grad_(true);
    bool fired = false;
    auto hook = [&](const Node& n, const std::vector<at::Tensor>& outs) {
      compare_node(n, outs, *analysis, explained, unmodelled, s, fired, rep);
      for (const auto& o : outs)
        if (o.defined() && o.requires_grad() && !o.is_leaf()) o.retain_grad();
    };
    auto run = ex->run(feeds, hook);
    ++rep.samples;
    if (!run.ok()) {
      ++rep.stopped_samples;
      judge_crash(run.status(), graph, *analysis, explained, s, rep);
      continue;
    }
    if (fired || !backward) continue;
    ++rep.backward_samples;
    check_gradients(graph, *run, *analysis, s, rep);
  }
  return rep;
}

}  // namespace nanguard
