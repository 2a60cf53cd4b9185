#include "solver/linear_region.h"

#include <cmath>
#include <string>

#include <fmt/core.h>
#include <z3++.h>

namespace nanguard {
namespace {

// 2^k in decimal (k up to ~1100 for doubles).
std::string power_of_two(int k) {
  std::string digits = "1";  // little-endian decimal digits
  for (int i = 0; i < k; ++i) {
    int carry = 0;
    for (char& c : digits) {
      int d = (c - '0') * 2 + carry;
      c = static_cast<char>('0' + d % 10);
      carry = d / 10;
    }
    if (carry) digits.push_back(static_cast<char>('0' + carry));
  }
  return std::string(digits.rbegin(), digits.rend());
}

// The double's exact value as a Z3 rational, so that a solution that must hit a
// float32 number exactly (a divisor of exactly 0) is not lost to decimal rounding.
z3::expr rational(z3::context& ctx, double v) {
  if (v == 0) return ctx.real_val(0);
  int e = 0;
  double m = std::frexp(v, &e);  // v = m * 2^e, 0.5 <= |m| < 1
  auto mant = static_cast<int64_t>(std::ldexp(m, 53));
  e -= 53;
  while (mant % 2 == 0) { mant /= 2; ++e; }
  std::string num = std::to_string(mant);
  if (e >= 0) return ctx.real_val(num.c_str()) * ctx.real_val(power_of_two(e).c_str());
  return ctx.real_val((num + "/" + power_of_two(-e)).c_str());
}

enum class Sense { kAtLeast, kAtMost, kEqual };

std::optional<std::vector<double>> solve(const std::vector<LinearCoordinate>& coords, double s0, Sense sense,
                                         double bound) {
  // Moves d_j in [-down_j, up_j] with s0 + sum g_j d_j (sense) bound, every number
  // exact; the cost sum |d_j| / width_j only ranks solutions.
  if (coords.empty() || !std::isfinite(s0) || !std::isfinite(bound)) return std::nullopt;
  z3::context ctx;
  z3::optimize opt(ctx);
  z3::expr lhs = rational(ctx, s0), cost = ctx.real_val(0);
  std::vector<z3::expr> d;
  for (size_t j = 0; j < coords.size(); ++j) {
    const auto& c = coords[j];
    if (!std::isfinite(c.gradient) || !(c.width > 0)) return std::nullopt;
    d.push_back(ctx.real_const(("d" + std::to_string(j)).c_str()));
    z3::expr a = ctx.real_const(("a" + std::to_string(j)).c_str());  // |d_j|
    opt.add(d[j] >= rational(ctx, -c.down) && d[j] <= rational(ctx, c.up));
    opt.add(a >= d[j] && a >= -d[j]);
    lhs = lhs + rational(ctx, c.gradient) * d[j];
    cost = cost + rational(ctx, 1.0 / c.width) * a;
  }
  z3::expr r = rational(ctx, bound);
  opt.add(sense == Sense::kAtLeast ? lhs >= r : sense == Sense::kAtMost ? lhs <= r : lhs == r);
  opt.minimize(cost);
  if (opt.check() != z3::sat) return std::nullopt;
  z3::model m = opt.get_model();
  std::vector<double> out(coords.size());
  for (size_t j = 0; j < coords.size(); ++j) out[j] = m.eval(d[j], true).as_double();
  return out;
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
