#include "solver/training_witness.h"

#include <chrono>
#include <optional>

#include <fmt/core.h>

#include "analyzer/analyzer.h"
#include "ops/tensor_proto.h"
#include "solver/confirm.h"
#include "solver/search_context.h"
#include "solver/surrogate.h"

namespace nanguard {
namespace {

// The model's first scalar float output: the loss a training step descends.
std::optional<size_t> loss_output(const ExecResult& exec) {
  for (size_t i = 0; i < exec.outputs.size(); ++i) {
    const at::Tensor& o = exec.outputs[i];
    if (o.defined() && at::isFloatingType(o.scalar_type()) && o.numel() == 1) return i;
  }
  return std::nullopt;
}

class TrainingSearch {
 public:
  TrainingSearch(SearchContext& c, const TrainingOptions& o) : c_(c), opt_(o) {}

  TrainingWitness run() {
    TrainingWitness w;
    for (int restart = 0; c_.time_left() && !w.found; ++restart) {
      TensorMap x = restart % 2 ? c_.space.sample_corner(c_.gen) : c_.space.sample(c_.gen);
      if (try_point(w, x, "training-draw")) break;
      descend(w, x);
    }
    w.seconds = c_.elapsed();
    w.runs = runs_;
    return w;
  }

 private:

  // Weights as leaves of `ex`'s float type; the first run's loss; weights after one
  // SGD step (connected to the example's graph when `create_graph`).
  std::optional<TensorMap> step(const Executor& ex, const TensorMap& feeds, bool create_graph) {
    TensorMap all = feeds;
    std::vector<std::pair<std::string, at::Tensor>> leaves;
    std::vector<at::Tensor> weights;
    for (const auto& [name, w] : ex.weights()) {
      if (!is_trainable(c_.graph, name, w)) continue;
      at::Tensor leaf = w.detach().clone().requires_grad_(true);
      all[name] = leaf;
      leaves.emplace_back(name, leaf);
      weights.push_back(leaf);
    }
    if (weights.empty()) return std::nullopt;
    auto exec = ex.run(all);
    if (!exec.ok()) return std::nullopt;
    auto li = loss_output(*exec);
    if (!li) return std::nullopt;
    at::Tensor loss = exec->outputs[*li];
    if (!loss.requires_grad() || !loss.isfinite().all().item<bool>()) return std::nullopt;
    loss.sum().backward({}, true, create_graph, at::TensorList(weights));
    TensorMap stepped;
    for (auto& [name, leaf] : leaves) {
      at::Tensor g = leaf.grad();
      at::Tensor base = create_graph ? leaf : leaf.detach();
      stepped[name] = g.defined() ? base - opt_.learning_rate * (create_graph ? g : g.detach()) : base;
    }
    return stepped;
  }

  // A real float32 step, then the real float32 run the finding must fail in.
  bool try_point(TrainingWitness& w, const TensorMap& x, const char* strategy) {
    ++runs_;
    TensorMap feeds = c_.space.feeds(x, c_.graph, at::kFloat);
    auto stepped = step(c_.ex32, feeds, false);
    if (!stepped) return false;
    TensorMap next = feeds;
    for (const auto& [name, t] : *stepped) next[name] = t.detach();
    auto c = confirm_witness(c_.graph, c_.finding, c_.target.operand, next, at::kCPU);
    if (!c.ok() || !c->reproduced) return false;
    w.found = true;
    w.example = feeds;
    for (const auto& [name, t] : *stepped) w.stepped[name] = t.detach();
    w.strategy = strategy;
    return true;
  }

  // The surrogate of the target after the step, and its gradient in the example.
  std::optional<std::pair<double, TensorMap>> surrogate(const TensorMap& x, bool& at_least) {
    TensorMap feeds = c_.space.feeds(x, c_.graph, at::kDouble);
    for (const auto& v : c_.space.variables) feeds[v.name] = feeds[v.name].detach().clone().requires_grad_(true);
    auto stepped = step(c_.ex64, feeds, true);
    if (!stepped) return std::nullopt;
    TensorMap next = feeds;
    for (const auto& [name, t] : *stepped) next[name] = t;
    auto exec = c_.ex64.run(next);
    if (!exec.ok() || !exec->values.count(c_.target_tensor())) return std::nullopt;
    at::Tensor T = exec->values.at(c_.target_tensor());
    if (!T.requires_grad() || T.numel() == 0) return std::nullopt;
    auto [e, sur] = choose_surrogate(c_.target, T);
    at::Tensor s = surrogate_value(sur, T, e);
    if (!s.isfinite().item<bool>()) return std::nullopt;
    std::vector<at::Tensor> inputs;
    for (const auto& v : c_.space.variables) inputs.push_back(feeds[v.name]);
    s.backward({}, false, false, at::TensorList(inputs));
    TensorMap grads;
    for (const auto& v : c_.space.variables) {
      at::Tensor g = feeds[v.name].grad();
      grads[v.name] = g.defined() ? g.nan_to_num(0, 0, 0) : at::zeros_like(feeds[v.name]).detach();
    }
    at_least = sur.goal.at_least;
    return std::make_pair(s.item<double>(), grads);
  }

  void descend(TrainingWitness& w, TensorMap x) {
    bool up = false;
    auto cur = surrogate(x, up);
    for (double alpha = 0.1; cur && c_.time_left() && alpha > 1e-6;) {
      TensorMap next = x;
      for (const auto& v : c_.space.variables)
        next[v.name] = (x.at(v.name) + alpha * (v.hi - v.lo) * cur->second.at(v.name).sign() * (up ? 1.0 : -1.0)).to(at::kFloat).to(at::kDouble);
      c_.space.project(next);
      if (try_point(w, next, "training-gradient")) return;
      bool up2 = up;
      auto nxt = surrogate(next, up2);
      if (nxt && (up ? nxt->first > cur->first : nxt->first < cur->first)) { x = next; cur = nxt; }
      else alpha /= 2;
    }
  }

  SearchContext& c_;
  TrainingOptions opt_;
  int64_t runs_ = 0;
};

}  // namespace

Result<TrainingWitness> find_training_witness(const Graph& graph, const Finding& finding, const UnitTarget& target,
                                              const SearchSpace& space, const TrainingOptions& options) {
  auto context = make_search_context(graph, finding, target, space, options.seed, options.budget_seconds);
  if (!context.ok()) return context.status();
  SearchContext& c = **context;
  auto probe = c.ex32.run(space.feeds(space.sample(c.gen), graph, at::kFloat));
  if (probe.ok() && !loss_output(*probe))
    return Status::Error(fmt::format("{}: a training step needs a scalar float output (the loss); the model has none", graph.model_path));
  return TrainingSearch(c, options).run();
}

}  // namespace nanguard
