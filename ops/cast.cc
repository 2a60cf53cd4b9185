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
#include <ATen/ATen.h>
#include <fmt/core.h>

#include "model/graph.h"
#include "ops/op_registry.h"
#include "ops/tensor_proto.h"

namespace nanguard {
namespace {

using TP = onnx::TensorProto;

at::Tensor cast_to(const OpContext& ctx, const at::Tensor& x, int32_t to) {
  if (to == TP::STRING || to == TP::UNDEFINED)
    ctx.fail(fmt::format("cast to {} is not supported", elem_type_name(to)));
  at::ScalarType target = scalar_type_for(to);
  if (to == TP::FLOAT) target = ctx.float_type;
  if (x.scalar_type() == target) return x;
  bool is_unsigned_wide = to == TP::UINT16 || to == TP::UINT32;
  if (!is_unsigned_wide) return x.to(target);
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

NANGUARD_REGISTER_OPS({
    OpDef{"Cast", lower_cast},
    OpDef{"CastLike", lower_cast_like},
});

}  // namespace
}  // namespace nanguard
