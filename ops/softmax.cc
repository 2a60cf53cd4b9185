// Softmax, LogSoftmax and Hardmax. Before opset 13 the input is coerced to 2-D at
// `axis` (default 1): dims [0, axis) form the rows and [axis, rank) one row's
// elements. From opset 13 the op works along the single `axis` (default -1).
// at::softmax subtracts the maximum first (as ONNX's reference does), so large
// inputs do not overflow; a row of all -inf gives NaN (-inf - -inf), also as ONNX.
#include <ATen/ATen.h>

#include "ops/op_registry.h"

namespace nanguard {
namespace {

using Tensors = std::vector<at::Tensor>;
using AxisFn = at::Tensor (*)(const at::Tensor&, int64_t);

// Applies `f` along the axis the opset defines, restoring the input's shape.
at::Tensor along_axis(const OpContext& ctx, const at::Tensor& x, AxisFn f) {
  int64_t rank = x.dim();
  if (ctx.opset >= 13) {
    if (rank == 0) return f(x.reshape({1}), 0).reshape({});
    return f(x, normalize_axis(ctx, attr_int(ctx.node, "axis", -1), rank));
  }
  // The 2-D coercion allows axis == rank (rows of one element).
  int64_t axis = attr_int(ctx.node, "axis", 1);
  if (axis < 0) axis += rank;
  if (axis < 0 || axis > rank) ctx.fail("axis is out of range");
  int64_t rows = 1, cols = 1;
  for (int64_t d = 0; d < rank; ++d) (d < axis ? rows : cols) *= x.size(d);
  at::Tensor flat = x.reshape({rows, cols});
  return f(flat, 1).reshape(x.sizes());
}

at::Tensor softmax(const at::Tensor& x, int64_t dim) { return at::softmax(x, dim); }
at::Tensor log_softmax(const at::Tensor& x, int64_t dim) { return at::log_softmax(x, dim); }

// 1 at the first maximum of each slice, 0 elsewhere (np.argmax's tie rule; a NaN
// counts as the maximum, as in numpy and at::argmax).
at::Tensor hardmax(const at::Tensor& x, int64_t dim) {
  if (x.numel() == 0) return at::zeros_like(x);
  at::Tensor idx = x.argmax(dim, /*keepdim=*/true);
  return at::zeros_like(x).scatter(dim, idx, 1);
}

OpDef along(const char* op_type, AxisFn f) {
  return OpDef{op_type, [f](const OpContext& ctx) { return Tensors{along_axis(ctx, ctx.input(0), f)}; }};
}

NANGUARD_REGISTER_OPS({
    along("Softmax", softmax),
    along("LogSoftmax", log_softmax),
    along("Hardmax", hardmax),
});

}  // namespace
}  // namespace nanguard
