// A runtime value of any ONNX type the executor runs: a tensor, a sequence of
// tensors (seq(tensor)), or an optional that holds nothing. An optional that holds a
// value is that value: Optional(x) and x behave alike everywhere but in
// OptionalHasElement, which only asks whether there is one.
#pragma once

#include <string>
#include <vector>

#include <ATen/ATen.h>

namespace nanguard {

struct OpValue {
  enum class Kind { kTensor, kSequence, kNone };
  Kind kind = Kind::kTensor;
  at::Tensor tensor;               // kTensor (undefined for an omitted input)
  std::vector<at::Tensor> items;   // kSequence, in order

  static OpValue of(at::Tensor t) { return OpValue{Kind::kTensor, std::move(t), {}}; }
  static OpValue sequence(std::vector<at::Tensor> items) { return OpValue{Kind::kSequence, {}, std::move(items)}; }
  static OpValue none() { return OpValue{Kind::kNone, {}, {}}; }

  bool is_tensor() const { return kind == Kind::kTensor; }
  bool is_sequence() const { return kind == Kind::kSequence; }
  bool is_none() const { return kind == Kind::kNone; }
  // "tensor", "sequence of 3 tensors", "empty optional": for error messages.
  std::string describe() const;
};

}  // namespace nanguard
