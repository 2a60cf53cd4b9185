// Hazards: the conditions under which an op produces NaN/INF (or crashes), as the
// op's own interval predicate reports them, and each hazard's facets: the unit
// target the solver drives towards, the float32 operand domain where the op is safe
// (what the fixer clips to), and the rewrites that remove it. The analyzer, the
// solver and the fixer read these facets; no table of hazards lives outside ops/.
#pragma once

#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include <c10/core/Device.h>

#include "model/graph.h"
#include "model/ranges.h"
#include "model/status.h"

namespace nanguard {

// forward: the value itself becomes NaN/INF; gradient: the value is finite but a
// derivative is not (sqrt at 0); crash: the op cannot run (index out of range...).
enum class HazardKind { kForward, kGradient, kCrash };

const char* to_string(HazardKind kind);

struct HazardReport {
  std::string hazard;   // e.g. "log-nonpositive", "exp-overflow", "div-by-zero"
  HazardKind kind = HazardKind::kForward;
  int operand = 0;      // index of the input whose range is at fault
  std::string condition;  // the exact float32 condition, e.g. "x <= 0"
  // True when the hazard holds for every value in range (e.g. a constant 0 divisor).
  bool definite = false;
};

// The float32 set of one operand on which the op, and for gradient hazards its
// derivative, stays finite for every value of the other operands in their ranges:
// lo <= x <= hi, and |x| >= min_magnitude when that is > 0 (a divisor). Bounds are
// float32 values, the widest the analyzer's own hazard condition accepts, so that a
// Clip to them is proved (not RANUM's fixed 1e-37 / 38).
struct SafeDomain {
  int operand = 0;
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  double min_magnitude = 0;  // > 0: fixed by a sign-preserving clamp away from 0
  std::string text;          // readable, e.g. "x >= 2.93873588e-39"
};

// The node, the ranges of its inputs (one per node input, in order; an omitted input
// has lo = hi = 0) as the analysis found them, and the largest finite value of the
// float type the node computes in (65504 for float16; its gradients have that type
// too): bounds that keep a float32 op finite do not keep a float16 one.
using SafeDomainFn = std::function<std::optional<SafeDomain>(const Node&, const std::vector<Range>& operands, double type_max)>;

enum class Relation { kAtMost, kAtLeast, kEqual, kMagnitudeAtLeast, kMagnitudeAtMost };

// What the solver drives towards: one scalar condition on one tensor of the node,
// met by any single element of it.
struct UnitTarget {
  int operand = 0;  // index of the node input; -1: the node's first output
  Relation relation = Relation::kAtMost;
  double value = 0;  // a float32 number, measured on the backend where it matters
  std::string text;  // readable, e.g. "x <= 0", "x >= 88.7228394"
};

// The unit target of a hazard on a device, from the node and its operand ranges (as
// for SafeDomainFn; an operand the caller does not know has NaN bounds). An error
// says why this instance has none.
using UnitTargetFn =
    std::function<Result<UnitTarget>(const Node&, const std::vector<Range>& operands, double type_max, at::Device)>;

// For a condition on two operands (Pow: x < 0 and y not an integer), a value of the
// other operand in [lo, hi] that keeps the condition's other half true.
using CompleteFn = std::function<std::optional<double>(double lo, double hi)>;

// One hazard an op can report, with its facets. A facet that cannot exist says why
// (`no_target`, `no_safe_domain`), so that a test can check every hazard has each
// facet or a stated reason.
struct HazardFacet {
  std::string hazard;
  HazardKind kind = HazardKind::kForward;
  SafeDomainFn safe_domain = nullptr;
  std::string no_safe_domain;   // why there is none (e.g. "a sum over a window")
  // Names of the rewrites (ops/rewrite.h) that remove this hazard, most idiomatic first.
  std::vector<std::string> rewrites;
  UnitTargetFn target = nullptr;
  std::string no_target;        // why there is none (e.g. "an index bound depends on shapes")
  int completing_operand = -1;  // the operand `complete` picks; -1: none
  CompleteFn complete = nullptr;
  // True when bounding every float operand's magnitude bounds the result (a sum, a
  // product): with no one-operand safe domain, the fixer clips them all to [-m, m]
  // with the largest m it proves.
  bool bounded_operands = false;
};

// Float32 neighbours of a double, for safe bounds: the smallest float32 >= v, the
// largest <= v, the largest < v and the smallest > v.
double float32_up(double v);
double float32_down(double v);
double float32_below(double v);
double float32_above(double v);

// The readable form of a domain, e.g. "x >= 2.93873728e-39", "|x| >= 1e-30".
std::string describe(const SafeDomain& d);

// Safe domains of the common shapes: lo <= x, x <= hi, lo <= x <= hi, |x| >= m.
SafeDomainFn domain_at_least(int operand, double lo);
SafeDomainFn domain_at_most(int operand, double hi);
SafeDomainFn domain_within(int operand, double lo, double hi);
SafeDomainFn domain_away_from_zero(int operand, double min_magnitude);

// Unit targets of the common shapes: a fixed condition on one operand, and "the
// output is not finite" (operand -1, kMagnitudeAtLeast +inf) for hazards no single
// operand element decides (a sum, a window).
UnitTargetFn target_fixed(int operand, Relation relation, double value, std::string text);
UnitTargetFn target_output_not_finite();

// A hazard of a whole slice, window or sum, which no single operand element decides:
// its target is the output not being finite (forward; none for gradient hazards, whose
// output stays finite) and it has no one-operand safe set (`why`).
HazardFacet slice_facet(std::string hazard, HazardKind kind, std::string why);
// A hazard no operand value alone decides (an attribute, a bound set by shapes): `why`
// stands for both the target and the safe domain.
HazardFacet opaque_facet(std::string hazard, HazardKind kind, std::string why);

}  // namespace nanguard
