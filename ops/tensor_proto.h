// Conversion between ONNX TensorProto and ATen tensors, and between element types.
#pragma once

#include <string>

#include <ATen/ATen.h>
#include <onnx/onnx_pb.h>

namespace nanguard {

// ATen has no uint16/32/64: those widen to the next signed type that holds them.
at::ScalarType scalar_type_for(int32_t onnx_elem_type);  // throws ModelError
int32_t onnx_elem_type_for(at::ScalarType type);         // throws ModelError

// Throws ModelError naming the tensor when the proto is malformed or of an
// unsupported type (strings, complex).
at::Tensor tensor_from_proto(const onnx::TensorProto& proto);
onnx::TensorProto tensor_to_proto(const at::Tensor& tensor, const std::string& name);
// As above, stored as `onnx_elem_type` (e.g. a uint32 output computed in int64).
onnx::TensorProto tensor_to_proto(const at::Tensor& tensor, const std::string& name, int32_t onnx_elem_type);

}  // namespace nanguard
