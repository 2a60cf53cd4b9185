#include "ops/symbolic_form.h"

#include "ops/bilinear_bounds.h"

namespace nanguard {

bool BackSubstitution::may_overflow(const at::Tensor& magnitudes) const {
  return !(magnitudes <= value_limit(float_type()) * 0.5).all().item<bool>();
}

double BackSubstitution::rounding_gamma(double fan, int64_t inner) const {
  return accumulation_gamma(fan, float_type()) + accumulation_gamma(static_cast<double>(inner), at::kDouble);
}

std::vector<int64_t> spatial_dims(const at::Tensor& A) {
  std::vector<int64_t> d;
  for (int64_t i = 2; i < A.dim(); ++i) d.push_back(i);
  return d;
}

std::pair<at::Tensor, at::Tensor> channel_hull(const IntervalTensor& t) {
  int64_t c = t.shape.size() > 1 ? t.shape[1] : 1;
  auto reduce = [&](const at::Tensor& x, bool lo) {
    if (x.dim() != static_cast<int64_t>(t.shape.size()) || x.dim() < 2)  // no channel axis to keep
      return (lo ? x.min() : x.max()).reshape({1}).expand({c}).contiguous();
    at::Tensor v = x;
    for (int64_t d = v.dim() - 1; d >= 0; --d)
      if (d != 1) v = lo ? v.amin(d, true) : v.amax(d, true);
    return v.reshape({-1}).expand({c}).contiguous();
  };
  return {reduce(t.lo, true), reduce(t.hi, false)};
}

at::Tensor channel_magnitude(const IntervalTensor& t) {
  auto [l, u] = channel_hull(t);
  return at::maximum(l.abs(), u.abs());
}

std::optional<at::Tensor> per_channel(const IntervalTensor& t, int64_t channels, int64_t rank) {
  if (!t.exact() || !t.is_float() || static_cast<int64_t>(t.shape.size()) > rank) return std::nullopt;
  at::Tensor v = t.lo;
  while (v.dim() < rank) v = v.unsqueeze(0);
  for (int64_t d = 0; d < rank; ++d) {
    if (d == 1 || v.size(d) == 1) continue;
    if (!at::equal(v.amin(d, true).expand_as(v), v)) return std::nullopt;
    v = v.amin(d, true);
  }
  if (v.size(1) != 1 && v.size(1) != channels) return std::nullopt;
  return v.reshape({-1}).expand({channels}).contiguous();
}

at::Tensor scale_channels(const at::Tensor& A, const at::Tensor& k) {
  std::vector<int64_t> shape(A.dim(), 1);
  shape[1] = -1;
  return A * k.view(shape);
}

}  // namespace nanguard
