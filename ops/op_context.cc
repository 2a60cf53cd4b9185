#include "ops/op_context.h"

#include <fmt/core.h>

namespace nanguard {

const at::Tensor& OpContext::input(size_t i) const {
  if (!has_input(i)) fail(fmt::format("input {} is required but missing", i));
  return inputs[i];
}

const OpValue& OpContext::value(size_t i) const {
  bool omitted = i >= values.size() || i >= node.inputs.size() || node.inputs[i].empty();
  if (omitted) fail(fmt::format("input {} is required but missing", i));
  return values[i];
}

const std::vector<at::Tensor>& OpContext::sequence(size_t i) const {
  const OpValue& v = value(i);
  if (!v.is_sequence()) fail(fmt::format("input {} ('{}') must be a sequence, it is a {}", i, node.inputs[i], v.describe()));
  return v.items;
}

std::string OpValue::describe() const {
  if (is_none()) return "empty optional";
  if (is_tensor()) return "tensor";
  return fmt::format("sequence of {} tensor{}", items.size(), items.size() == 1 ? "" : "s");
}

std::vector<int64_t> OpContext::input_ints(size_t i) const {
  at::Tensor t = input(i).to(at::kCPU).to(at::kLong).contiguous().reshape({-1});
  const int64_t* p = t.data_ptr<int64_t>();
  return {p, p + t.numel()};
}

void OpContext::check_size(int64_t numel, at::ScalarType type) const {
  if (numel < 0 || numel > max_tensor_bytes / static_cast<int64_t>(c10::elementSize(type)))
    fail(fmt::format("output of {} elements is over the cap of {} bytes per tensor", numel, max_tensor_bytes));
}

void OpContext::fail(const std::string& message) const {
  throw ModelError(fmt::format("node '{}' ({}): {}", node.name, node.op_type, message));
}

int64_t normalize_axis(const OpContext& ctx, int64_t axis, int64_t rank) {
  int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= std::max<int64_t>(rank, 1))
    ctx.fail(fmt::format("axis {} is out of range for rank {}", axis, rank));
  return a;
}

}  // namespace nanguard
