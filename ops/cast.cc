// Cast and CastLike between numeric types and bool.
// Decisions where ONNX leaves the result open:
// - float -> integer of a value out of the target's range (or NaN/INF) is undefined
//   in ONNX; ATen converts with C++ casts, so the result is whatever the CPU/GPU
//   conversion gives (x86: INT_MIN for int32/int64). The analyzer reports such casts
//   as `crash` findings; the oracle does not treat the value as meaningful.
// - integers narrow by wrapping (two's complement), as numpy's astype does; the ONNX
//   unsigned types ATen lacks (uint16/32/64) are held in the next wider signed type,
//   so their wrap is done by masking a 64-bit value.
// - float32 -> float16/bfloat16 rounds to nearest even and overflows to INF. The
//   ONNX 1.12 test data truncates to bfloat16 (ONNX 1.14 moved to round-to-nearest-
//   even); the spec text names no rounding, so nanguard keeps ATen's (the hardware's).
// - anything -> bool is `x != 0` (NaN -> true); bool -> number is 0/1.
// - a cast to FLOAT gives the run's float type (float64 in a float64 run), as the
//   executor does for float32 weights, so one run never mixes precisions.
// - string casts are not supported.
#include <cmath>
#include <limits>
#include <optional>

#include <ATen/ATen.h>
#include <fmt/core.h>

#include "model/graph.h"
#include "ops/float_thresholds.h"
#include "ops/op_registry.h"
#include "ops/tensor_proto.h"

namespace nanguard {
namespace {

using TP = onnx::TensorProto;
constexpr double kInf = std::numeric_limits<double>::infinity();

at::Tensor cast_to(const OpContext& ctx, const at::Tensor& x, int32_t to) {
  if (to == TP::STRING || to == TP::UNDEFINED)
    ctx.fail(fmt::format("cast to {} is not supported", elem_type_name(to)));
  at::ScalarType target = scalar_type_for(to);
  if (to == TP::FLOAT) target = ctx.float_type;
  bool is_unsigned_wide = to == TP::UINT16 || to == TP::UINT32;
  // An unsigned type held in a wider signed one wraps even from that same type
  // (int32 -1 -> uint16 65535).
  if (!is_unsigned_wide) return x.scalar_type() == target ? x : x.to(target);
  // Float -> int64 first: in-range values keep their integer part, then wrap.
  int64_t mask = to == TP::UINT16 ? 0xFFFF : 0xFFFFFFFFLL;
  return x.to(at::kLong).bitwise_and(mask).to(target);
}

std::vector<at::Tensor> lower_cast(const OpContext& ctx) {
  return {cast_to(ctx, ctx.input(0), static_cast<int32_t>(attr_int(ctx.node, "to")))};
}

// CastLike (opset 15): to the element type of input 1 (its values are unused).
std::vector<at::Tensor> lower_cast_like(const OpContext& ctx) {
  at::ScalarType target = ctx.input(1).scalar_type();
  const at::Tensor& x = ctx.input(0);
  return {x.scalar_type() == target ? x : x.to(target)};
}

// ---- Abstract semantics ----------------------------------------------------------
// Every cast is non-decreasing (float -> float rounds to nearest, float -> integer
// truncates toward zero), so bounds map through it, widened by the target's
// rounding. Hazards: `cast-overflow` of kind crash where a float range can leave the
// target integer type (the result is undefined there), and of kind forward where a
// float range can round to INF in float16/bfloat16 (float32 overflow of a float64
// operand is the engine's generic `overflow` check). The analysis continues on the
// safe state: results clamped to the target's range.

struct Target {
  at::ScalarType type = at::kFloat;
  bool integer = false, boolean = false;
  double min = 0, max = 0;  // integers: the representable range
  const char* name = "";
};

constexpr double kTwo63 = 9223372036854775808.0;
constexpr double kHalfMax = 65504.0, kHalfInfFrom = 65520.0;  // from 65520 on, half rounds to INF
constexpr double kBf16Max = 3.3895313892515355e38, kBf16InfFrom = 3.3961775292304996e38;

Target target_of_onnx(int32_t to, at::ScalarType float_type) {
  Target t;
  t.type = to == TP::FLOAT ? float_type : scalar_type_for(to);
  auto integer = [&](double lo, double hi, const char* name) {
    t.integer = true;
    t.min = lo;
    t.max = hi;
    t.name = name;
  };
  switch (to) {
    case TP::BOOL: t.boolean = true; break;
    case TP::INT8: integer(-128, 127, "int8"); break;
    case TP::UINT8: integer(0, 255, "uint8"); break;
    case TP::INT16: integer(-32768, 32767, "int16"); break;
    case TP::UINT16: integer(0, 65535, "uint16"); break;
    case TP::INT32: integer(-2147483648.0, 2147483647.0, "int32"); break;
    case TP::UINT32: integer(0, 4294967295.0, "uint32"); break;
    case TP::INT64: integer(-kTwo63, kTwo63 - 1, "int64"); break;
    case TP::UINT64: integer(0, 2 * kTwo63 - 1, "uint64"); break;
    default: break;
  }
  return t;
}

Target target_of_type(at::ScalarType type) {
  switch (type) {
    case at::kBool: return target_of_onnx(TP::BOOL, at::kFloat);
    case at::kChar: return target_of_onnx(TP::INT8, at::kFloat);
    case at::kByte: return target_of_onnx(TP::UINT8, at::kFloat);
    case at::kShort: return target_of_onnx(TP::INT16, at::kFloat);
    case at::kInt: return target_of_onnx(TP::INT32, at::kFloat);
    case at::kLong: return target_of_onnx(TP::INT64, at::kFloat);
    default: {
      Target t;
      t.type = type;
      return t;
    }
  }
}

Target target_of(const AbstractContext& a) {
  if (a.node.op_type == "CastLike") return target_of_type(a.input(1).dtype);
  int32_t to = static_cast<int32_t>(attr_int(a.node, "to"));
  if (to == TP::STRING || to == TP::UNDEFINED) a.fail(fmt::format("cast to {} is not supported", elem_type_name(to)));
  return target_of_onnx(to, a.float_type);
}

// Relative and absolute rounding error of a conversion into a float type.
std::pair<double, double> float_rounding(at::ScalarType from, at::ScalarType to) {
  if (to == at::kHalf) return {std::ldexp(1.0, -11), std::ldexp(1.0, -25)};
  if (to == at::kBFloat16) return {std::ldexp(1.0, -8), std::ldexp(1.0, -134)};
  if (to == at::kFloat && from != at::kFloat && from != at::kHalf && from != at::kBFloat16 && from != at::kBool)
    return {std::ldexp(1.0, -24), kFloat32MinSubnormal / 2};
  if (to == at::kDouble && from == at::kLong) return {std::ldexp(1.0, -53), 0.0};
  return {0.0, 0.0};
}

std::vector<IntervalTensor> cast_interval(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  Target t = target_of(a);
  if (t.boolean) {
    at::Tensor nonzero = (x.lo > 0).logical_or(x.hi < 0), zero = (x.lo == 0).logical_and(x.hi == 0);
    return {IntervalTensor::of_bounds(nonzero.to(at::kDouble), zero.logical_not().to(at::kDouble), x.shape, at::kBool)};
  }
  if (t.integer) {
    at::Tensor lo = x.lo, hi = x.hi;
    if (x.is_float()) {
      // Truncation toward zero, on the safe state (in the target's range).
      lo = lo.trunc().clamp(t.min, t.max);
      hi = hi.trunc().clamp(t.min, t.max);
    } else {
      // Integers narrow by wrapping: an element whose range leaves the target's
      // range may land anywhere in it.
      at::Tensor inside = (lo >= t.min).logical_and(hi <= t.max);
      lo = at::where(inside, lo, at::full_like(lo, t.min));
      hi = at::where(inside, hi, at::full_like(hi, t.max));
    }
    return {IntervalTensor::of_bounds(lo, hi, x.shape, t.type)};
  }
  auto [rel, abs] = float_rounding(x.dtype, t.type);
  at::Tensor lo = x.lo - x.lo.abs() * rel - abs, hi = x.hi + x.hi.abs() * rel + abs;
  double m = t.type == at::kHalf ? kHalfMax : t.type == at::kBFloat16 ? kBf16Max : kInf;
  return {IntervalTensor::of_bounds(lo.clamp(-m, m), hi.clamp(-m, m), x.shape, t.type)};
}

std::vector<HazardReport> cast_hazards(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  Target t = target_of(a);
  if (!x.is_float() || t.boolean) return {};
  if (t.integer) {
    // trunc(x) fits iff min - 1 < x < max + 1.
    at::Tensor bad = (x.lo <= t.min - 1).logical_or(x.hi >= t.max + 1);
    if (!bad.any().item<bool>()) return {};
    bool definite = (x.hi <= t.min - 1).logical_or(x.lo >= t.max + 1).all().item<bool>();
    return {HazardReport{"cast-overflow", HazardKind::kCrash, 0,
                         fmt::format("x <= {} or x >= {} (undefined in {})", t.min - 1, t.max + 1, t.name), definite}};
  }
  double inf_from = t.type == at::kHalf ? kHalfInfFrom : t.type == at::kBFloat16 ? kBf16InfFrom : kInf;
  at::Tensor mag_hi = at::maximum(x.lo.abs(), x.hi.abs());
  if (!(mag_hi >= inf_from).any().item<bool>()) return {};
  at::Tensor mag_lo = at::where((x.lo <= 0).logical_and(x.hi >= 0), at::zeros_like(x.lo), at::minimum(x.lo.abs(), x.hi.abs()));
  return {HazardReport{"cast-overflow", HazardKind::kForward, 0, fmt::format("|x| >= {:.9g}", inf_from),
                       (mag_lo >= inf_from).all().item<bool>()}};
}

// Facets of Cast's `cast-overflow` (crash into an integer type, INF in float16 /
// bfloat16): the bounds are the float32 values cast_hazards accepts.
std::optional<Target> cast_target_type(const Node& node) {
  int32_t to = static_cast<int32_t>(attr_int(node, "to", TP::UNDEFINED));
  if (to == TP::STRING || to == TP::UNDEFINED) return std::nullopt;
  return target_of_onnx(to, at::kFloat);
}

std::optional<SafeDomain> cast_domain(const Node& node, const std::vector<Range>&, double) {
  std::optional<Target> t = cast_target_type(node);
  if (!t || t->boolean) return std::nullopt;
  double lo = -kInf, hi = kInf;
  if (t->integer) {
    lo = float32_above(t->min - 1);
    hi = float32_below(t->max + 1);
  } else if (t->type == at::kHalf || t->type == at::kBFloat16) {
    hi = float32_below(t->type == at::kHalf ? kHalfInfFrom : kBf16InfFrom);
    lo = -hi;
  }
  SafeDomain d{0, lo, hi, 0, ""};
  d.text = describe(d);
  return d;
}

// Into an integer: the side of (min - 1, max + 1) the range reaches; into float16 /
// bfloat16: |x| from the measured INF threshold.
Result<UnitTarget> cast_target(const Node& node, const std::vector<Range>& r, double type_max, at::Device device) {
  std::optional<Target> t = cast_target_type(node);
  if (!t) return Status::Error("a cast to an unsupported type");
  if (t->type == at::kHalf)
    return threshold_target(Threshold::kHalfOverflow, 0, Relation::kMagnitudeAtLeast, "|x| >= {:.9g}")(node, r, type_max, device);
  if (t->type == at::kBFloat16)
    return threshold_target(Threshold::kBFloat16Overflow, 0, Relation::kMagnitudeAtLeast, "|x| >= {:.9g}")(node, r, type_max, device);
  if (!t->integer) return Status::Error("a cast to a floating type that cannot overflow");
  if (!r.empty() && r[0].hi >= t->max + 1) {
    double v = float32_up(t->max + 1);
    return UnitTarget{0, Relation::kAtLeast, v, fmt::format("x >= {:.9g}", v)};
  }
  double v = float32_down(t->min - 1);
  return UnitTarget{0, Relation::kAtMost, v, fmt::format("x <= {:.9g}", v)};
}

// One facet for both kinds (kind here: the integer case's).
std::vector<HazardFacet> cast_facets() {
  return {HazardFacet{"cast-overflow", HazardKind::kCrash, cast_domain, "", {}, cast_target}};
}

std::vector<HazardFacet> cast_like_facets() {
  const char* why = "the target type is input 1's element type, which the node and operand ranges do not carry";
  return {HazardFacet{"cast-overflow", HazardKind::kCrash, nullptr, why, {}, nullptr, why}};
}

OpDef with_abstract(OpDef d) {
  d.interval = cast_interval;
  d.hazards = cast_hazards;
  return d;
}

NANGUARD_REGISTER_OPS({
    with_facets(with_abstract(OpDef{"Cast", lower_cast}), cast_facets()),
    with_facets(with_abstract(OpDef{"CastLike", lower_cast_like}), cast_like_facets()),
});

}  // namespace
}  // namespace nanguard
