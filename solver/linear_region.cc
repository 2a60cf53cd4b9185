#include "solver/linear_region.h"

#include <cmath>
#include <string>

#include <fmt/core.h>
#include <z3++.h>

namespace nanguard {
namespace {

// Coefficients are scaled so the largest is about 1, then written as n / 2^40:
// exact rationals for Z3, to a relative 1e-12 of the largest term.
z3::expr rational(z3::context& ctx, double v) {
  double scaled = std::nearbyint(v * 1099511627776.0);
  return ctx.real_val(fmt::format("{:.0f}/1099511627776", scaled).c_str());
}

enum class Sense { kAtLeast, kAtMost, kEqual };

std::optional<std::vector<double>> solve(const std::vector<LinearCoordinate>& coords, double s0, Sense sense,
                                         double bound) {
  // Units: u_j = d_j / width_j; the constraint sum (g_j width_j) u_j (sense) bound - s0,
  // divided by the largest |g_j width_j| so that Z3 sees numbers near 1.
  double scale = 0;
  for (const auto& c : coords) scale = std::max(scale, std::abs(c.gradient * c.width));
  if (scale == 0 || !std::isfinite(scale)) return std::nullopt;
  double rhs = (bound - s0) / scale;
  if (!std::isfinite(rhs) || std::abs(rhs) > 1e12) return std::nullopt;
  z3::context ctx;
  z3::optimize opt(ctx);
  z3::expr lhs = ctx.real_val(0), cost = ctx.real_val(0);
  std::vector<z3::expr> u;
  for (size_t j = 0; j < coords.size(); ++j) {
    const auto& c = coords[j];
    u.push_back(ctx.real_const(("u" + std::to_string(j)).c_str()));
    z3::expr a = ctx.real_const(("a" + std::to_string(j)).c_str());  // |u_j|
    opt.add(u[j] >= rational(ctx, -c.down / c.width) && u[j] <= rational(ctx, c.up / c.width));
    opt.add(a >= u[j] && a >= -u[j]);
    lhs = lhs + rational(ctx, c.gradient * c.width / scale) * u[j];
    cost = cost + a;
  }
  z3::expr r = rational(ctx, rhs);
  opt.add(sense == Sense::kAtLeast ? lhs >= r : sense == Sense::kAtMost ? lhs <= r : lhs == r);
  opt.minimize(cost);
  if (opt.check() != z3::sat) return std::nullopt;
  z3::model m = opt.get_model();
  std::vector<double> d(coords.size());
  for (size_t j = 0; j < coords.size(); ++j) d[j] = m.eval(u[j], true).as_double() * coords[j].width;
  return d;
}

}  // namespace

std::optional<std::vector<double>> solve_linear_step(const std::vector<LinearCoordinate>& coords,
                                                     const LinearGoal& goal) {
  return solve(coords, goal.s0, goal.at_least ? Sense::kAtLeast : Sense::kAtMost, goal.bound);
}

std::optional<std::vector<double>> solve_linear_equal(const std::vector<LinearCoordinate>& coords, double s0,
                                                      double bound) {
  return solve(coords, s0, Sense::kEqual, bound);
}

}  // namespace nanguard
