#include "ops/float_thresholds.h"

#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include <fmt/core.h>

namespace nanguard {
namespace {

using Fn = std::function<at::Tensor(const at::Tensor&)>;

// Long enough for AVX-512's two 16-float vectors per step plus a scalar tail.
constexpr int64_t kProbeLength = 67;

at::Tensor probe(float v, at::Device device) {
  return at::full({kProbeLength}, v, at::TensorOptions().dtype(at::kFloat).device(device));
}

bool none_finite(const at::Tensor& t) { return t.isfinite().logical_not().all().item<bool>(); }

// Both signs fail: the magnitude thresholds hold for +m and -m alike.
FloatPredicate both_signs(const Fn& f, at::Device device, bool gradient) {
  return [=](float m) {
    auto fails = [&](float v) { return gradient ? gradient_fails_everywhere(f, v, device) : fails_everywhere(f, v, device); };
    return fails(m) && fails(-m);
  };
}

FloatPredicate forward(const Fn& f, at::Device device) {
  return [=](float v) { return fails_everywhere(f, v, device); };
}

FloatPredicate backward(const Fn& f, at::Device device) {
  return [=](float v) { return gradient_fails_everywhere(f, v, device); };
}

Result<float> measure(Threshold t, at::Device d) {
  constexpr float kMax = 3.4028234663852886e38f;
  switch (t) {
    case Threshold::kExpOverflow: return first_true(forward([](const at::Tensor& x) { return x.exp(); }, d), 0.f, 128.f);
    case Threshold::kCoshOverflow: return first_true(both_signs([](const at::Tensor& x) { return x.cosh(); }, d, false), 0.f, 128.f);
    case Threshold::kSinhOverflow: return first_true(both_signs([](const at::Tensor& x) { return x.sinh(); }, d, false), 0.f, 128.f);
    case Threshold::kLogNonFinite: return last_true(forward([](const at::Tensor& x) { return x.log(); }, d), -1.f, 1.f);
    case Threshold::kLogGradient: return last_true(backward([](const at::Tensor& x) { return x.log(); }, d), 0.f, 1.f);
    case Threshold::kSqrtNaN: return last_true(forward([](const at::Tensor& x) { return x.sqrt(); }, d), -1.f, 1.f);
    case Threshold::kSqrtGradient: return last_true(backward([](const at::Tensor& x) { return x.sqrt(); }, d), 0.f, 1.f);
    case Threshold::kReciprocalOverflow:
      return last_true(both_signs([](const at::Tensor& x) { return x.reciprocal(); }, d, false), 0.f, 1.f);
    case Threshold::kAsinDomain: return first_true(both_signs([](const at::Tensor& x) { return x.asin(); }, d, false), 0.f, 2.f);
    case Threshold::kAcosDomain: return first_true(both_signs([](const at::Tensor& x) { return x.acos(); }, d, false), 0.f, 2.f);
    case Threshold::kAsinGradient: return first_true(both_signs([](const at::Tensor& x) { return x.asin(); }, d, true), 0.f, 1.f);
    case Threshold::kAcosGradient: return first_true(both_signs([](const at::Tensor& x) { return x.acos(); }, d, true), 0.f, 1.f);
    case Threshold::kAcoshDomain: return last_true(forward([](const at::Tensor& x) { return x.acosh(); }, d), 0.f, 2.f);
    case Threshold::kAcoshGradient: return last_true(backward([](const at::Tensor& x) { return x.acosh(); }, d), 1.f, 2.f);
    case Threshold::kAtanhDomain: return first_true(both_signs([](const at::Tensor& x) { return x.atanh(); }, d, false), 0.f, 2.f);
    case Threshold::kHalfOverflow: return first_true(both_signs([](const at::Tensor& x) { return x.to(at::kHalf); }, d, false), 0.f, kMax);
    case Threshold::kBFloat16Overflow:
      return first_true(both_signs([](const at::Tensor& x) { return x.to(at::kBFloat16); }, d, false), 0.f, kMax);
  }
  return Status::Error("unknown float threshold");
}

}  // namespace

int64_t float32_index(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  int64_t mag = bits & 0x7fffffffu;
  return (bits >> 31) ? -mag : mag;
}

float float32_at(int64_t index) {
  uint32_t bits = index >= 0 ? static_cast<uint32_t>(index) : (0x80000000u | static_cast<uint32_t>(-index));
  float v;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

Result<float> first_true(const FloatPredicate& pred, float lo, float hi) {
  if (pred(lo)) return lo;
  if (!pred(hi)) return Status::Error(fmt::format("no change of the property in [{}, {}]", lo, hi));
  int64_t a = float32_index(lo), b = float32_index(hi);  // pred(a) false, pred(b) true
  while (b - a > 1) {
    int64_t m = a + (b - a) / 2;
    (pred(float32_at(m)) ? b : a) = m;
  }
  return float32_at(b);
}

Result<float> last_true(const FloatPredicate& pred, float lo, float hi) {
  if (pred(hi)) return hi;
  if (!pred(lo)) return Status::Error(fmt::format("no change of the property in [{}, {}]", lo, hi));
  int64_t a = float32_index(lo), b = float32_index(hi);  // pred(a) true, pred(b) false
  while (b - a > 1) {
    int64_t m = a + (b - a) / 2;
    (pred(float32_at(m)) ? a : b) = m;
  }
  return float32_at(a);
}

bool fails_everywhere(const std::function<at::Tensor(const at::Tensor&)>& f, float v, at::Device device) {
  at::NoGradGuard no_grad;
  return none_finite(f(probe(v, device)));
}

bool gradient_fails_everywhere(const std::function<at::Tensor(const at::Tensor&)>& f, float v, at::Device device) {
  at::AutoGradMode grad_mode(true);
  at::Tensor x = probe(v, device).requires_grad_(true);
  f(x).sum().backward();
  return none_finite(x.grad());
}

const char* to_string(Threshold t) {
  switch (t) {
    case Threshold::kExpOverflow: return "exp-overflow";
    case Threshold::kCoshOverflow: return "cosh-overflow";
    case Threshold::kSinhOverflow: return "sinh-overflow";
    case Threshold::kLogNonFinite: return "log-nonfinite";
    case Threshold::kLogGradient: return "log-gradient";
    case Threshold::kSqrtNaN: return "sqrt-nan";
    case Threshold::kSqrtGradient: return "sqrt-gradient";
    case Threshold::kReciprocalOverflow: return "reciprocal-overflow";
    case Threshold::kAsinDomain: return "asin-domain";
    case Threshold::kAcosDomain: return "acos-domain";
    case Threshold::kAsinGradient: return "asin-gradient";
    case Threshold::kAcosGradient: return "acos-gradient";
    case Threshold::kAcoshDomain: return "acosh-domain";
    case Threshold::kAcoshGradient: return "acosh-gradient";
    case Threshold::kAtanhDomain: return "atanh-domain";
    case Threshold::kHalfOverflow: return "float16-overflow";
    case Threshold::kBFloat16Overflow: return "bfloat16-overflow";
  }
  return "?";
}

Result<float> float_threshold(Threshold t, at::Device device) {
  static std::mutex mu;
  static std::map<std::pair<int, std::string>, float> cache;
  std::pair<int, std::string> key{static_cast<int>(t), device.str()};
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
  }
  Result<float> r = measure(t, device);
  if (!r.ok()) return Status::Error(fmt::format("measuring the {} threshold on {}: {}", to_string(t), device.str(), r.status().message()));
  std::lock_guard<std::mutex> lock(mu);
  cache[key] = *r;
  return *r;
}

UnitTargetFn threshold_target(Threshold t, int operand, Relation relation, const char* text) {
  return [=](const Node&, const std::vector<Range>&, double, at::Device device) -> Result<UnitTarget> {
    Result<float> v = float_threshold(t, device);
    if (!v.ok()) return v.status();
    return UnitTarget{operand, relation, *v, fmt::format(text, *v)};
  };
}

}  // namespace nanguard
