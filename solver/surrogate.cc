#include "solver/surrogate.h"

#include <algorithm>
#include <cmath>

#include "ops/interval.h"

namespace nanguard {
namespace {

// log of the largest float64 that float32 rounds to 0: a surrogate below it means the
// float32 value is exactly 0 (exp underflow, a softmax entry that vanished).
const double kLogFloat32Zero = std::log(kFloat32MinSubnormal / 2) - 0.5;

}  // namespace

std::pair<int64_t, Surrogate> choose_surrogate(const UnitTarget& target, const at::Tensor& t) {
  at::Tensor d = t.detach().flatten();
  double v = target.value, tiny = kFloat32MinSubnormal;
  if (!std::isfinite(v)) v = v > 0 ? kFloat32Max : -kFloat32Max;
  Surrogate s;
  switch (target.relation) {
    case Relation::kAtLeast:
      s.goal = {0, true, v + std::max(std::abs(v) * 1e-6, tiny)};
      return {d.argmax().item<int64_t>(), s};
    case Relation::kAtMost: {
      int64_t e = d.argmin().item<int64_t>();
      if (std::abs(v) <= tiny && d[e].item<double>() > 0) {
        s.log_scale = true;
        s.goal = {0, false, kLogFloat32Zero};
      } else {
        s.goal = {0, false, v - std::max(std::abs(v) * 1e-6, tiny)};
      }
      return {e, s};
    }
    case Relation::kEqual:
    case Relation::kMagnitudeAtMost: {
      s.log_scale = true;
      s.shift = target.relation == Relation::kEqual ? v : 0;
      s.goal = {0, false, target.relation == Relation::kEqual || v <= tiny ? kLogFloat32Zero : std::log(v) - 1e-6};
      return {(d - s.shift).abs().argmin().item<int64_t>(), s};
    }
    case Relation::kMagnitudeAtLeast:
      s.log_scale = true;
      s.goal = {0, true, std::log(v) + 1e-6};
      return {d.abs().argmax().item<int64_t>(), s};
  }
  return {0, s};
}

at::Tensor surrogate_value(const Surrogate& sur, const at::Tensor& t, int64_t e) {
  at::Tensor te = t.flatten()[e];
  if (te.scalar_type() == at::kHalf || te.scalar_type() == at::kBFloat16) te = te.to(at::kFloat);  // no CPU log for half
  return sur.log_scale ? (te - sur.shift).abs().log() : te;
}

}  // namespace nanguard
