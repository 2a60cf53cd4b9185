#include "solver/system_witness.h"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <optional>

#include <fmt/core.h>

#include "ops/interval.h"
#include "oracle/nonfinite.h"
#include "solver/confirm.h"
#include "solver/linear_region.h"
#include "solver/search_context.h"
#include "solver/surrogate.h"

namespace nanguard {
namespace {

struct Linearization {
  Surrogate sur;
  double s = 0;
  double t = 0;  // T_e in float64
  std::vector<at::Tensor> grads;  // ds/dz per variable (float64)
  bool saturated = false;         // a gradient element was NaN/INF (zeroed)
};

class Search {
 public:
  Search(SearchContext& c, const SearchOptions& o) : c_(c), opt_(o) {}

  SystemWitness run() {
    SystemWitness w;
    if (opt_.random_only) random_loop(w);
    else guided_loop(w);
    w.seconds = c_.elapsed();
    w.runs = runs_;
    return w;
  }

 private:

  bool finish(SystemWitness& w, const TensorMap& p, const char* strategy) {
    w.found = true;
    w.point = p;
    w.strategy = strategy;
    return true;
  }

  void random_loop(SystemWitness& w) {
    while (c_.time_left()) {
      TensorMap p = c_.space.sample(c_.gen);
      if (fires(p)) { finish(w, p, "random"); return; }
    }
  }

  void guided_loop(SystemWitness& w) {
    // One uniform draw first: where failures are common it is the cheapest witness.
    TensorMap first = c_.space.sample(c_.gen);
    if (fires(first)) { finish(w, first, "random"); return; }
    for (int restart = 0; c_.time_left(); ++restart) {
      TensorMap p = restart % 3 == 0 ? c_.space.sample_stored(c_.gen) : restart % 3 == 1 ? c_.space.sample(c_.gen) : c_.space.sample_corner(c_.gen);
      if (fires(p)) { finish(w, p, "random"); return; }
      auto lin = linearize(p);
      if (!lin) continue;  // no gradient path from the variables: only draws remain
      if (try_snaps(w, p, *lin)) return;
      if (descend(w, p, *lin)) return;
    }
  }

  // One f32 run: does the node fail (forward: output NaN/INF from finite inputs;
  // crash: the run stops there; gradient: the target is met and a backward pass
  // confirms)?
  // One float32 run. kFires: the node fails as the finding says (forward: NaN/INF
  // from finite inputs; crash: the run stops there; gradient: the target is met and a
  // backward pass confirms). kBlocked: something else fails first, which hides it.
  enum class Verdict { kFires, kClear, kBlocked };

  Verdict probe(const TensorMap& point, const char* label) {
    ++runs_;
    TensorMap feeds = c_.space.feeds(point, c_.graph, at::kFloat);
    auto exec = c_.ex32.run(feeds);
    Verdict v = judge(exec, feeds);
    if (trace_) std::cerr << fmt::format("search: run {} {}: {}\n", runs_, label, v == Verdict::kFires ? "fires" : v == Verdict::kClear ? "clear" : "blocked");
    return v;
  }

  static bool finite(const at::Tensor& t) {
    return !at::isFloatingType(t.scalar_type()) || t.isfinite().all().item<bool>();
  }

  Verdict judge(const Result<ExecResult>& exec, const TensorMap& feeds) {
    if (c_.finding.kind == HazardKind::kCrash) {
      if (exec.ok()) return Verdict::kClear;
      bool here = exec.status().message().find("'" + c_.node.name + "'") != std::string::npos;
      return here ? Verdict::kFires : Verdict::kBlocked;
    }
    if (!exec.ok()) return Verdict::kBlocked;
    const auto& v = exec->values;
    if (c_.finding.kind == HazardKind::kForward) {  // NaN/INF born here (oracle/nonfinite.h)
      NodeCounts c = count_at(c_.node, v);
      if (c.nan_in()) return Verdict::kBlocked;  // a NaN from before hides this node's
      return c.birth() ? Verdict::kFires : Verdict::kClear;  // else at most a carried infinity
    }
    for (const auto& o : exec->outputs)
      if (o.defined() && !finite(o)) return Verdict::kBlocked;
    if (!v.count(c_.target_tensor()) || !target_met(v.at(c_.target_tensor()))) return Verdict::kClear;
    auto c = confirm_witness(c_.graph, c_.finding, c_.target.operand, feeds, c_.ex32.options().device);
    if (trace_) std::cerr << "search: target met; " << (c.ok() ? c->detail : c.status().message()) << "\n";
    return c.ok() && c->reproduced ? Verdict::kFires : Verdict::kBlocked;
  }

  bool fires(const TensorMap& point, const char* label = "draw") { return probe(point, label) == Verdict::kFires; }

  bool target_met(const at::Tensor& t) const {
    at::Tensor d = t.detach().to(at::kCPU).to(at::kDouble).flatten();
    auto acc = d.accessor<double, 1>();
    for (int64_t i = 0; i < d.numel(); ++i)
      if (meets(c_.target, acc[i])) return true;
    return false;
  }

  // The element to move and the surrogate for it. A float32 pass first (several times
  // cheaper on convolutions, whose float64 kernels are slow): it serves unless its
  // surrogate or gradients saturate; an exact target (a divisor of exactly 0) needs the
  // float64 pass's resolution of T_e - shift.
  std::optional<Linearization> linearize(const TensorMap& point) {
    if (c_.target.relation != Relation::kEqual)
      if (auto lin = linearize_with(c_.ex32, at::kFloat, point); lin && usable(*lin)) return lin;
    return linearize_with(c_.ex64, at::kDouble, point);
  }

  static bool usable(const Linearization& lin) {
    bool moves = false;
    for (const at::Tensor& g : lin.grads) moves = moves || g.ne(0).any().item<bool>();
    return moves && !lin.saturated && std::isfinite(lin.s) && std::isfinite(lin.t);
  }

  std::optional<Linearization> linearize_with(Executor& ex, at::ScalarType type, const TensorMap& point) {
    TensorMap feeds = c_.space.feeds(point, c_.graph, type);
    std::vector<at::Tensor> leaves;
    for (const auto& var : c_.space.variables) {
      at::Tensor& t = feeds[var.name];
      t = t.detach().clone().requires_grad_(true);
      leaves.push_back(t);
    }
    auto exec = ex.run(feeds);
    if (!exec.ok() || !exec->values.count(c_.target_tensor())) return std::nullopt;
    at::Tensor T = exec->values.at(c_.target_tensor());
    if (!T.requires_grad() || !at::isFloatingType(T.scalar_type()) || T.numel() == 0) return std::nullopt;
    auto [e, sur] = choose_surrogate(c_.target, T);
    double tv = T.flatten()[e].item<double>();
    if (!std::isfinite(tv)) return std::nullopt;
    at::Tensor s = surrogate_value(sur, T, e);
    if (!std::isfinite(s.item<double>())) return std::nullopt;
    s.backward();
    sur.goal.s0 = s.item<double>();
    Linearization lin{sur, sur.goal.s0, tv, {}};
    for (const auto& leaf : leaves) {
      at::Tensor g = leaf.grad();
      if (g.defined() && !g.isfinite().all().item<bool>()) lin.saturated = true;
      lin.grads.push_back(g.defined() ? g.to(at::kDouble).nan_to_num(0, 0, 0)
                                      : at::zeros_like(leaf, at::TensorOptions().dtype(at::kDouble)).detach());
    }
    return lin;
  }

  bool better(const Linearization& a, const Linearization& b) const {
    return b.sur.goal.at_least ? a.s > b.s : a.s < b.s;
  }

  // Candidates along the gradient's support: every moving coordinate at the box end
  // the descent points to, or at the value nearest 0 (a sum of |w| that must vanish).
  bool try_snaps(SystemWitness& w, const TensorMap& p, const Linearization& lin) {
    TensorMap corner = p, zero = p;
    double dir = lin.sur.goal.at_least ? 1.0 : -1.0;
    for (size_t i = 0; i < c_.space.variables.size(); ++i) {
      const auto& var = c_.space.variables[i];
      at::Tensor g = lin.grads[i] * dir, moving = g != 0;
      corner[var.name] = at::where(g > 0, var.hi, at::where(g < 0, var.lo, p.at(var.name)));
      zero[var.name] = at::where(moving, at::zeros_like(var.lo).clamp(var.lo, var.hi), p.at(var.name));
    }
    if (fires(corner, "corner")) return finish(w, corner, "box-corner");
    bool to_zero = c_.target.relation != Relation::kAtLeast && c_.target.relation != Relation::kMagnitudeAtLeast;
    if (to_zero && fires(zero, "zero")) return finish(w, zero, "zero-snap");
    return false;
  }

  // The K coordinates with the most leverage |g| * width, and Z3's move for them.
  // `exact`: the goal T_e == shift on the raw target (a divisor of exactly 0), whose
  // gradient is the log surrogate's times (T_e - shift).
  std::optional<TensorMap> linear_step(const TensorMap& p, const Linearization& lin, bool exact = false) {
    std::vector<at::Tensor> lever;
    for (size_t i = 0; i < c_.space.variables.size(); ++i) {
      const auto& var = c_.space.variables[i];
      lever.push_back((lin.grads[i].abs() * (var.hi - var.lo)).flatten());
    }
    at::Tensor all = at::cat(lever);
    int64_t k = std::min<int64_t>(opt_.linear_coordinates, all.numel());
    auto top = std::get<1>(all.topk(k));
    std::vector<std::pair<size_t, int64_t>> where;
    std::vector<LinearCoordinate> coords;
    for (int64_t j = 0; j < k; ++j) {
      int64_t flat = top[j].item<int64_t>();
      size_t var = 0;
      while (flat >= lever[var].numel()) flat -= lever[var++].numel();
      const auto& sv = c_.space.variables[var];
      double z = p.at(sv.name).flatten()[flat].item<double>();
      double lo = sv.lo.flatten()[flat].item<double>(), hi = sv.hi.flatten()[flat].item<double>();
      double g = lin.grads[var].flatten()[flat].item<double>();
      if (exact) g *= lin.t - lin.sur.shift;
      if (g == 0 || hi <= lo) continue;
      coords.push_back({g, z - lo, hi - z, hi - lo});
      where.emplace_back(var, flat);
    }
    if (coords.empty()) return std::nullopt;
    auto d = exact ? solve_linear_equal(coords, lin.t, lin.sur.shift) : solve_linear_step(coords, lin.sur.goal);
    if (!d && exact) return std::nullopt;
    if (!d) d = furthest_move(coords, lin.sur.goal.at_least);
    TensorMap next = p;
    for (size_t j = 0; j < coords.size(); ++j) {
      const auto& sv = c_.space.variables[where[j].first];
      at::Tensor t = next.at(sv.name).clone();
      t.view({-1})[where[j].second] += (*d)[j];
      next[sv.name] = t;
    }
    round_and_project(next);
    return next;
  }

  // The goal is out of the K coordinates' reach: move them all the way (the linear
  // model's best), then re-linearize.
  static std::vector<double> furthest_move(const std::vector<LinearCoordinate>& coords, bool up) {
    std::vector<double> d;
    for (const auto& c : coords) d.push_back((c.gradient > 0) == up ? c.up : -c.down);
    return d;
  }

  void round_and_project(TensorMap& p) const {
    for (const auto& var : c_.space.variables) p[var.name] = p.at(var.name).to(at::kFloat).to(at::kDouble);
    c_.space.project(p);
  }

  TensorMap sign_step(const TensorMap& p, const Linearization& lin, double alpha) const {
    TensorMap next = p;
    double dir = lin.sur.goal.at_least ? 1.0 : -1.0;
    for (size_t i = 0; i < c_.space.variables.size(); ++i) {
      const auto& var = c_.space.variables[i];
      next[var.name] = p.at(var.name) + alpha * (var.hi - var.lo) * (lin.grads[i] * dir).sign();
    }
    round_and_project(next);
    return next;
  }

  // Alternates Z3 linear steps and sign-gradient steps from `p` until the step size
  // collapses (then the caller restarts elsewhere). A step is kept only when it
  // improves the surrogate and leaves the rest of the model finite.
  bool descend(SystemWitness& w, TensorMap p, Linearization lin) {
    double alpha = 0.1;
    for (int iter = 0; c_.time_left() && alpha > 1e-7; ++iter) {
      if (trace_) std::cerr << fmt::format("search: iter {} alpha {:.3g} s {:.6g} t {:.6g} goal {:.6g}\n", iter, alpha, lin.s, lin.t, lin.sur.goal.bound);
      if (iter % 3 == 0 && c_.target.relation == Relation::kEqual) {
        if (auto next = linear_step(p, lin, true)) {
          Verdict v = probe(*next, "linear-exact");
          if (v == Verdict::kFires) return finish(w, *next, "linear-region");
        }
      }
      if (iter % 3 == 0) {
        if (auto next = linear_step(p, lin)) {
          Verdict v = probe(*next, "linear");
          if (v == Verdict::kFires) return finish(w, *next, "linear-region");
          auto nl = v == Verdict::kClear ? linearize(*next) : std::nullopt;
          if (nl && better(*nl, lin)) { p = *next; lin = *nl; continue; }
        }
      }
      TensorMap next = sign_step(p, lin, alpha);
      Verdict v = probe(next, "sign");
      if (v == Verdict::kFires) return finish(w, next, "gradient");
      auto nl = v == Verdict::kClear ? linearize(next) : std::nullopt;
      if (nl && better(*nl, lin)) { p = next; lin = *nl; }
      else alpha /= 2;
    }
    return false;
  }

  SearchContext& c_;
  SearchOptions opt_;
  int64_t runs_ = 0;
  bool trace_ = std::getenv("NANGUARD_TRACE_SEARCH") != nullptr;  // per-step progress on stderr
};

}  // namespace

Result<SystemWitness> find_system_witness(const Graph& graph, const Finding& finding, const UnitTarget& target,
                                          const SearchSpace& space, const SearchOptions& options) {
  auto context = make_search_context(graph, finding, target, space, options.seed, options.budget_seconds);
  if (!context.ok()) return context.status();
  return Search(**context, options).run();
}

}  // namespace nanguard
