// Sequences and optionals (ONNX seq(tensor), optional(...)): SequenceEmpty,
// SequenceConstruct, SequenceInsert, SequenceAt, SequenceErase, SequenceLength,
// SplitToSequence, ConcatFromSequence, SequenceMap, Optional, OptionalHasElement,
// OptionalGetElement. tf2onnx and torch.onnx write them for lists built in loops.
// The executor runs them (OpDef::lower_values); the analysis does not model sequence
// values, so past one it reports the op and stops, never proves.
#include <ATen/ATen.h>
#include <fmt/core.h>

#include "ops/op_registry.h"
#include "ops/tensor_proto.h"

namespace nanguard {
namespace {

using Values = std::vector<OpValue>;

// The tensor lowering of an op that only makes sense on sequences: the analyzer's
// exact evaluation calls it and falls back to "no abstract semantics".
std::vector<at::Tensor> tensors_only(const OpContext& c) {
  c.fail("takes or returns sequences or optionals, which the analysis does not model");
}

// A position into a sequence of n: -n..n-1, or -n..n where one may insert at the end.
int64_t position(const OpContext& c, size_t input, int64_t n, bool at_end_ok) {
  const at::Tensor& p = c.input(input);
  if (p.numel() != 1 || at::isFloatingType(p.scalar_type())) c.fail("the position must be one integer");
  int64_t i = p.item<int64_t>();
  int64_t hi = at_end_ok ? n : n - 1;
  if (i < -n || i > hi) c.fail(fmt::format("position {} is out of range for a sequence of {}", i, n));
  return i < 0 ? i + n : i;
}

void check_same_type(const OpContext& c, const std::vector<at::Tensor>& items, const at::Tensor& t) {
  if (!items.empty() && items[0].scalar_type() != t.scalar_type())
    c.fail(fmt::format("a sequence holds one element type: {} then {}", c10::toString(items[0].scalar_type()),
                       c10::toString(t.scalar_type())));
}

Values sequence_empty(const OpContext&) { return {OpValue::sequence({})}; }

Values sequence_construct(const OpContext& c) {
  std::vector<at::Tensor> items;
  for (size_t i = 0; i < c.num_inputs(); ++i) {
    check_same_type(c, items, c.input(i));
    items.push_back(c.input(i));
  }
  return {OpValue::sequence(std::move(items))};
}

Values sequence_insert(const OpContext& c) {
  std::vector<at::Tensor> items = c.sequence(0);
  const at::Tensor& t = c.input(1);
  check_same_type(c, items, t);
  int64_t n = static_cast<int64_t>(items.size());
  int64_t at_pos = c.has_input(2) ? position(c, 2, n, true) : n;
  items.insert(items.begin() + at_pos, t);
  return {OpValue::sequence(std::move(items))};
}

Values sequence_at(const OpContext& c) {
  const std::vector<at::Tensor>& items = c.sequence(0);
  return {OpValue::of(items[position(c, 1, static_cast<int64_t>(items.size()), false)])};
}

Values sequence_erase(const OpContext& c) {
  std::vector<at::Tensor> items = c.sequence(0);
  int64_t n = static_cast<int64_t>(items.size());
  if (n == 0) c.fail("cannot erase from an empty sequence");
  int64_t at_pos = c.has_input(1) ? position(c, 1, n, false) : n - 1;
  items.erase(items.begin() + at_pos);
  return {OpValue::sequence(std::move(items))};
}

Values sequence_length(const OpContext& c) {
  auto n = static_cast<int64_t>(c.sequence(0).size());
  return {OpValue::of(at::scalar_tensor(n, at::TensorOptions().dtype(at::kLong).device(c.device)))};
}

// No split: one slice per index (squeezed unless keepdims); a scalar: chunks of that
// length, the last shorter; a 1-D tensor: the lengths, which must sum to the axis.
Values split_to_sequence(const OpContext& c) {
  const at::Tensor& x = c.input(0);
  int64_t axis = normalize_axis(c, attr_int(c.node, "axis", 0), x.dim());
  int64_t len = x.dim() == 0 ? 1 : x.size(axis);
  std::vector<at::Tensor> items;
  if (!c.has_input(1)) {
    bool keep = attr_int(c.node, "keepdims", 1) != 0;
    for (int64_t i = 0; i < len; ++i) items.push_back(keep ? x.narrow(axis, i, 1) : x.select(axis, i));
    return {OpValue::sequence(std::move(items))};
  }
  std::vector<int64_t> split = c.input_ints(1);
  if (c.input(1).dim() == 0) {
    if (split[0] <= 0) c.fail(fmt::format("split {} must be positive", split[0]));
    for (int64_t s = 0; s < len; s += split[0]) items.push_back(x.narrow(axis, s, std::min(split[0], len - s)));
    return {OpValue::sequence(std::move(items))};
  }
  int64_t total = 0;
  for (int64_t s : split) {
    if (s < 0) c.fail(fmt::format("split length {} is negative", s));
    total += s;
  }
  if (total != len) c.fail(fmt::format("split lengths sum to {}, the axis has {}", total, len));
  for (int64_t s = 0, i = 0; i < static_cast<int64_t>(split.size()); s += split[i++])
    items.push_back(x.narrow(axis, s, split[i]));
  return {OpValue::sequence(std::move(items))};
}

Values concat_from_sequence(const OpContext& c) {
  const std::vector<at::Tensor>& items = c.sequence(0);
  if (items.empty()) c.fail("cannot concatenate an empty sequence");
  bool new_axis = attr_int(c.node, "new_axis", 0) != 0;
  int64_t rank = items[0].dim() + (new_axis ? 1 : 0);
  int64_t axis = normalize_axis(c, attr_int(c.node, "axis"), rank);
  return {OpValue::of(new_axis ? at::stack(items, axis) : at::cat(items, axis))};
}

// The body runs once per position of the sequence inputs (all of one length), on
// their elements and the tensor inputs as they are; each output collects a sequence.
Values sequence_map(const OpContext& c) {
  size_t n = c.sequence(0).size();
  for (size_t i = 1; i < c.num_inputs(); ++i)
    if (c.value(i).is_sequence() && c.value(i).items.size() != n)
      c.fail(fmt::format("input {} holds {} elements, input 0 holds {}", i, c.value(i).items.size(), n));
  std::vector<std::vector<at::Tensor>> outs(c.num_outputs());
  for (size_t k = 0; k < n; ++k) {
    Values in;
    for (size_t i = 0; i < c.num_inputs(); ++i)
      in.push_back(c.value(i).is_sequence() ? OpValue::of(c.value(i).items[k]) : c.value(i));
    Values out = c.run_subgraph_values("body", in);
    if (out.size() < outs.size()) c.fail("the body returns fewer outputs than the node has");
    for (size_t j = 0; j < outs.size(); ++j) {
      if (!out[j].is_tensor()) c.fail(fmt::format("the body's output {} is a {}, not a tensor", j, out[j].describe()));
      outs[j].push_back(out[j].tensor);
    }
  }
  Values result;
  for (auto& o : outs) result.push_back(OpValue::sequence(std::move(o)));
  return result;
}

// An optional holding a value is that value; without an input, an empty one.
Values optional(const OpContext& c) {
  bool given = c.num_inputs() > 0 && !c.node.inputs[0].empty();
  if (!given && !has_attr(c.node, "type")) c.fail("an empty Optional needs its 'type' attribute");
  return {given ? c.value(0) : OpValue::none()};
}

Values optional_has_element(const OpContext& c) {
  bool has = c.num_inputs() > 0 && !c.node.inputs[0].empty() && !c.value(0).is_none();
  return {OpValue::of(at::scalar_tensor(has, at::TensorOptions().dtype(at::kBool).device(c.device)))};
}

Values optional_get_element(const OpContext& c) {
  const OpValue& v = c.value(0);
  if (v.is_none()) c.fail("the optional holds no value");
  return {v};
}

OpDef sequence_op(const char* type, ValueLowerFn lower) { return with_values(OpDef{type, tensors_only}, std::move(lower)); }

}  // namespace

NANGUARD_REGISTER_OPS({
    sequence_op("SequenceEmpty", sequence_empty),
    sequence_op("SequenceConstruct", sequence_construct),
    sequence_op("SequenceInsert", sequence_insert),
    sequence_op("SequenceAt", sequence_at),
    sequence_op("SequenceErase", sequence_erase),
    sequence_op("SequenceLength", sequence_length),
    sequence_op("SplitToSequence", split_to_sequence),
    sequence_op("ConcatFromSequence", concat_from_sequence),
    sequence_op("SequenceMap", sequence_map),
    sequence_op("Optional", optional),
    sequence_op("OptionalHasElement", optional_has_element),
    sequence_op("OptionalGetElement", optional_get_element),
});

}  // namespace nanguard
