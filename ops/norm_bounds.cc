#include "ops/norm_bounds.h"

#include <cmath>
#include <numeric>

namespace nanguard {
namespace {

constexpr double kDoubleRoundoff = 0x1p-53;

// A float64 result of `n` roundings (a sum of n terms, a square root) made an upper bound.
double outward(double x, double n) { return x * (1 + (n + 4) * kDoubleRoundoff); }

// Per batch entry, the Frobenius norm of a [B, r, r] tensor.
at::Tensor frobenius(const at::Tensor& G) { return G.flatten(1).norm(2, {1}); }

at::Tensor symmetric(const at::Tensor& G) { return (G + G.transpose(1, 2)) * 0.5; }

}  // namespace

double norm_of(const IntervalTensor& t) {
  if (!t.lo.defined() || !t.is_float()) return kNoNormBound;
  int64_t numel = t.numel();
  if (numel == 0) return 0;
  if (t.exact()) {
    double n = at::linalg_vector_norm(t.value, 2, c10::nullopt, false, at::kDouble).item<double>();
    return outward(n, static_cast<double>(numel));
  }
  at::Tensor m = at::maximum(-t.lo, t.hi);  // max(|lo|, |hi|) as lo <= hi
  double repeats = static_cast<double>(numel) / static_cast<double>(std::max<int64_t>(m.numel(), 1));
  double n = outward(m.norm().item<double>() * std::sqrt(repeats), static_cast<double>(m.numel()));
  return std::isnan(n) ? kNoNormBound : n;
}

// lambda_max(G_0) <= (||G_T||_F * prod f_t^(2^(T-t)))^(1/2^T) for G_{t+1} = (G_t / f_t)^2
// with G_0 = M M^T symmetric PSD. The products run in float32 (float64 costs twice the
// time for bounds that never need its precision) on M scaled by a power of 2 into
// [-1, 1]. Each step is kept symmetric; its rounding E_t (|E_t| <= gamma_r |G_t| |G_t|,
// so ||E_t||_2 <= r gamma_r ||G_t||_2^2, plus the scaling's sqrt(r) u) shrinks the top
// eigenvalue by at most a factor (1 - delta), which through the roots costs at most
// (1 - delta)^-1 on the bound; forming G_0 errs by gamma_c |M| |M|^T, of norm at most
// gamma_c ||M||_F^2.
std::vector<double> spectral_norm_bounds(const at::Tensor& M_in, double max_multiply_adds) {
  constexpr int kSteps = 3;
  constexpr double u = 0x1p-24;
  int64_t B = M_in.size(0);
  at::Tensor M = M_in.scalar_type() == at::kFloat ? M_in : M_in.to(at::kDouble);
  if (M.size(1) > M.size(2)) M = M.transpose(1, 2);
  double r = static_cast<double>(M.size(1)), c = static_cast<double>(M.size(2));
  double cost = static_cast<double>(B) * r * r * (c + kSteps * r);
  std::vector<double> out(static_cast<size_t>(B), kNoNormBound);
  if (cost > max_multiply_adds || B == 0 || (r + 2) * u > 0.01) return out;
  if (r == 0 || c == 0) return std::vector<double>(static_cast<size_t>(B), 0.0);
  auto [mn, mx] = at::aminmax(M);
  double top = std::max(-mn.item<double>(), mx.item<double>());
  if (!std::isfinite(top)) return out;
  if (top == 0) return std::vector<double>(static_cast<size_t>(B), 0.0);
  int e = std::ilogb(top);
  double scale = std::ldexp(1.0, -e - 1);  // exact: a power of 2
  // A float32 product by a normal power of 2 rounds as the exact one does.
  at::Tensor Mf = M.scalar_type() == at::kFloat && e > -120 && e < 120 ? M * scale : (M.to(at::kDouble) * scale).to(at::kFloat);
  // ||M||_F does not depend on the transpose: read the operand as laid out.
  at::Tensor frob_m = at::linalg_vector_norm(M_in.reshape({B, -1}), 2, {1}, false, at::kDouble) * scale;
  at::Tensor G = symmetric(at::bmm(Mf, Mf.transpose(1, 2)));
  at::Tensor log_scale = at::zeros({B}, M.options());
  for (int t = 0; t < kSteps; ++t) {
    at::Tensor f = frobenius(G);
    f = at::where(f > 0, f, at::ones_like(f));
    G = G / f.view({B, 1, 1});
    log_scale = 2 * (log_scale + f.to(at::kDouble).log());
    G = symmetric(at::bmm(G, G));
  }
  double gamma_r = (r + 2) * u / (1 - (r + 2) * u), gamma_c = (c + 2) * u / (1 - (c + 2) * u);
  double delta = r * gamma_r + std::sqrt(r) * u + r * r * 0x1p-126;
  at::Tensor lam = ((log_scale + frobenius(G.to(at::kDouble)).log()) / std::pow(2.0, kSteps)).exp() / (1 - 2 * delta);
  lam = lam + frob_m.square() * gamma_c + r * c * 0x1p-149;
  // M in float32 differs from M by u |M| (float64 weights) or a subnormal's half.
  at::Tensor sigma = (lam.sqrt() + frob_m * u + std::sqrt(r * c) * 0x1p-149) / scale;
  for (int64_t b = 0; b < B; ++b) {
    double v = outward(sigma[b].item<double>(), 8 + r);
    if (std::isfinite(v)) out[static_cast<size_t>(b)] = v;
  }
  return out;
}

double max_spectral_norm_bound(const at::Tensor& M, double max_multiply_adds) {
  double best = 0;
  for (double s : spectral_norm_bounds(M, max_multiply_adds)) best = std::max(best, s);
  return best;
}

double magnitude_norm_bound(const at::Tensor& M) {
  at::Tensor A = M.abs();
  if (A.dim() == 2) A = A.unsqueeze(0);
  double rows = A.sum(2, false, at::kDouble).max().item<double>(), cols = A.sum(1, false, at::kDouble).max().item<double>();
  double n = static_cast<double>(std::max(A.size(1), A.size(2)));
  double b = outward(std::sqrt(rows * cols), n);
  return std::isnan(b) ? kNoNormBound : b;
}

double broadcast_norm(const at::Tensor& v, int64_t numel) {
  if (v.numel() == 0) return 0;
  double n = at::linalg_vector_norm(v, 2, c10::nullopt, false, at::kDouble).item<double>();
  double repeats = static_cast<double>(numel) / static_cast<double>(v.numel());
  double b = outward(n * std::sqrt(repeats), static_cast<double>(v.numel()));
  return std::isnan(b) ? kNoNormBound : b;
}

int64_t window_overlap(int64_t kernel, int64_t stride, int64_t dilation) {
  if (kernel <= 0) return 0;
  int64_t period = stride / std::gcd(stride, dilation);
  return (kernel + period - 1) / period;
}

double norm_preserved(const NormContext& c) { return c.input(0); }

}  // namespace nanguard
