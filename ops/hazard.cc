#include "ops/hazard.h"

#include <cmath>

#include <fmt/core.h>

namespace nanguard {

const char* to_string(HazardKind kind) {
  switch (kind) {
    case HazardKind::kForward: return "forward";
    case HazardKind::kGradient: return "gradient";
    case HazardKind::kCrash: return "crash";
  }
  return "forward";
}

namespace {
constexpr float kInfF = std::numeric_limits<float>::infinity();
}

double float32_up(double v) {
  float f = static_cast<float>(v);
  return static_cast<double>(f) < v ? std::nextafter(f, kInfF) : f;
}

double float32_down(double v) {
  float f = static_cast<float>(v);
  return static_cast<double>(f) > v ? std::nextafter(f, -kInfF) : f;
}

double float32_below(double v) {
  float f = static_cast<float>(float32_down(v));
  return static_cast<double>(f) == v ? std::nextafter(f, -kInfF) : f;
}

double float32_above(double v) {
  float f = static_cast<float>(float32_up(v));
  return static_cast<double>(f) == v ? std::nextafter(f, kInfF) : f;
}

SafeDomainFn domain_at_least(int operand, double lo) {
  return [=](const Node&, const std::vector<Range>&) {
    return std::optional<SafeDomain>(SafeDomain{operand, lo, std::numeric_limits<double>::infinity(), 0, fmt::format("x >= {:.9g}", lo)});
  };
}

SafeDomainFn domain_at_most(int operand, double hi) {
  return [=](const Node&, const std::vector<Range>&) {
    return std::optional<SafeDomain>(SafeDomain{operand, -std::numeric_limits<double>::infinity(), hi, 0, fmt::format("x <= {:.9g}", hi)});
  };
}

SafeDomainFn domain_within(int operand, double lo, double hi) {
  return [=](const Node&, const std::vector<Range>&) {
    return std::optional<SafeDomain>(SafeDomain{operand, lo, hi, 0, fmt::format("{:.9g} <= x <= {:.9g}", lo, hi)});
  };
}

SafeDomainFn domain_away_from_zero(int operand, double m) {
  return [=](const Node&, const std::vector<Range>&) {
    double inf = std::numeric_limits<double>::infinity();
    return std::optional<SafeDomain>(SafeDomain{operand, -inf, inf, m, fmt::format("|x| >= {:.9g}", m)});
  };
}

UnitTargetFn target_fixed(int operand, Relation relation, double value, std::string text) {
  return [=](const Node&, const std::vector<Range>&, at::Device) -> Result<UnitTarget> {
    return UnitTarget{operand, relation, value, text};
  };
}

UnitTargetFn target_output_not_finite() {
  return target_fixed(-1, Relation::kMagnitudeAtLeast, std::numeric_limits<double>::infinity(), "y is not finite");
}

HazardFacet slice_facet(std::string hazard, HazardKind kind, std::string why) {
  HazardFacet f{std::move(hazard), kind, nullptr, std::move(why), {}};
  if (kind == HazardKind::kForward) f.target = target_output_not_finite();
  else f.no_target = "the condition is on the sum over a window or slice, not on one element";
  return f;
}

HazardFacet opaque_facet(std::string hazard, HazardKind kind, std::string why) {
  return HazardFacet{std::move(hazard), kind, nullptr, why, {}, nullptr, why};
}

}  // namespace nanguard
