#include "analyzer/half_grid.h"

#include <limits>
#include <tuple>

#include <onnx/onnx_pb.h>

namespace nanguard {
namespace {

at::Tensor grid_of(at::ScalarType type) {
  at::Tensor v = at::arange(-32768, 32768, at::kInt).to(at::kShort).view(type).to(at::kDouble);
  v = std::get<0>(at::sort(v.masked_select(at::isfinite(v))));
  return std::get<0>(at::unique_consecutive(v)).contiguous();
}

}  // namespace

at::ScalarType half_type_of(int32_t onnx_elem_type) {
  if (onnx_elem_type == onnx::TensorProto::FLOAT16) return at::kHalf;
  if (onnx_elem_type == onnx::TensorProto::BFLOAT16) return at::kBFloat16;
  return at::kFloat;
}

const at::Tensor& half_grid(at::ScalarType type) {
  static const at::Tensor f16 = grid_of(at::kHalf), bf16 = grid_of(at::kBFloat16);
  return type == at::kHalf ? f16 : bf16;
}

at::Tensor round_on_grid(const at::Tensor& x, at::ScalarType type, bool up) {
  const at::Tensor& grid = half_grid(type);
  at::Tensor flat = x.detach().to(at::kDouble).contiguous().view(-1);
  int64_t n = grid.size(0);
  at::Tensor i = at::searchsorted(grid, flat, /*out_int32=*/false, /*right=*/!up);
  if (!up) i = i - 1;
  at::Tensor r = grid.index({i.clamp(0, n - 1)});
  double inf = std::numeric_limits<double>::infinity();
  r = up ? at::where(i >= n, at::full_like(r, inf), r) : at::where(i < 0, at::full_like(r, -inf), r);
  r = at::where(at::isnan(flat), flat, r).view(x.sizes());
  return x.requires_grad() ? x + (r - x).detach() : r;
}

}  // namespace nanguard
