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

std::string describe(const SafeDomain& d) {
  std::string s;
  auto add = [&s](const std::string& part) { s += (s.empty() ? "" : " and ") + part; };
  if (std::isfinite(d.lo) && std::isfinite(d.hi)) add(fmt::format("{:.9g} <= x <= {:.9g}", d.lo, d.hi));
  else if (std::isfinite(d.lo)) add(fmt::format("x >= {:.9g}", d.lo));
  else if (std::isfinite(d.hi)) add(fmt::format("x <= {:.9g}", d.hi));
  if (d.min_magnitude > 0) add(fmt::format("|x| >= {:.9g}", d.min_magnitude));
  return s.empty() ? "any x" : s;
}

namespace {

// A domain that does not depend on the node or the other operands.
SafeDomainFn constant_domain(int operand, double lo, double hi, double min_magnitude) {
  SafeDomain d{operand, lo, hi, min_magnitude, ""};
  d.text = describe(d);
  return [d](const Node&, const std::vector<Range>&, double) { return std::optional<SafeDomain>(d); };
}

constexpr double kInfD = std::numeric_limits<double>::infinity();

}  // namespace

SafeDomainFn domain_at_least(int operand, double lo) { return constant_domain(operand, lo, kInfD, 0); }
SafeDomainFn domain_at_most(int operand, double hi) { return constant_domain(operand, -kInfD, hi, 0); }
SafeDomainFn domain_within(int operand, double lo, double hi) { return constant_domain(operand, lo, hi, 0); }
SafeDomainFn domain_away_from_zero(int operand, double m) { return constant_domain(operand, -kInfD, kInfD, m); }

UnitTargetFn target_fixed(int operand, Relation relation, double value, std::string text) {
  return [=](const Node&, const std::vector<Range>&, double, at::Device) -> Result<UnitTarget> {
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
