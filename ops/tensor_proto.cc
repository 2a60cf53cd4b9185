#include "ops/tensor_proto.h"

#include <cstring>

#include <fmt/core.h>

#include "model/graph.h"
#include "model/status.h"

namespace nanguard {
namespace {

using TP = onnx::TensorProto;

std::vector<int64_t> dims_of(const TP& p) { return {p.dims().begin(), p.dims().end()}; }

// Typed repeated fields hold narrower types widened (e.g. int8 in int32_data).
template <typename Field>
at::Tensor from_field(const Field& f, at::ScalarType stored, at::ScalarType target,
                      const std::vector<int64_t>& dims) {
  using V = typename Field::value_type;
  std::vector<V> copy(f.begin(), f.end());
  at::Tensor t = at::from_blob(copy.data(), {static_cast<int64_t>(copy.size())}, stored).clone();
  return t.to(target).reshape(dims);
}

at::Tensor from_typed_fields(const TP& p, at::ScalarType target, const std::vector<int64_t>& dims) {
  switch (p.data_type()) {
    case TP::FLOAT: return from_field(p.float_data(), at::kFloat, target, dims);
    case TP::DOUBLE: return from_field(p.double_data(), at::kDouble, target, dims);
    case TP::INT64: return from_field(p.int64_data(), at::kLong, target, dims);
    case TP::UINT32: case TP::UINT64: {
      std::vector<int64_t> v(p.uint64_data().begin(), p.uint64_data().end());
      return at::tensor(v, at::kLong).to(target).reshape(dims);
    }
    case TP::FLOAT16: case TP::BFLOAT16: {
      // Stored as raw 16-bit patterns in int32_data.
      std::vector<int16_t> bits(p.int32_data().begin(), p.int32_data().end());
      auto raw = at::from_blob(bits.data(), {static_cast<int64_t>(bits.size())}, at::kShort).clone();
      return raw.view(p.data_type() == TP::FLOAT16 ? at::kHalf : at::kBFloat16).to(target).reshape(dims);
    }
    default: return from_field(p.int32_data(), at::kInt, target, dims);
  }
}

}  // namespace

at::ScalarType scalar_type_for(int32_t t) {
  switch (t) {
    case TP::FLOAT: return at::kFloat;
    case TP::DOUBLE: return at::kDouble;
    case TP::FLOAT16: return at::kHalf;
    case TP::BFLOAT16: return at::kBFloat16;
    case TP::INT8: return at::kChar;
    case TP::UINT8: return at::kByte;
    case TP::INT16: return at::kShort;
    case TP::UINT16: case TP::INT32: return at::kInt;
    case TP::UINT32: case TP::INT64: case TP::UINT64: return at::kLong;
    case TP::BOOL: return at::kBool;
    default: throw ModelError(fmt::format("element type {} is not supported", elem_type_name(t)));
  }
}

int32_t onnx_elem_type_for(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return TP::FLOAT;
    case at::kDouble: return TP::DOUBLE;
    case at::kHalf: return TP::FLOAT16;
    case at::kBFloat16: return TP::BFLOAT16;
    case at::kChar: return TP::INT8;
    case at::kByte: return TP::UINT8;
    case at::kShort: return TP::INT16;
    case at::kInt: return TP::INT32;
    case at::kLong: return TP::INT64;
    case at::kBool: return TP::BOOL;
    default: throw ModelError(fmt::format("ATen type {} has no ONNX counterpart", c10::toString(t)));
  }
}

at::Tensor tensor_from_proto(const TP& p) {
  if (p.data_location() == TP::EXTERNAL)
    throw ModelError(fmt::format("tensor '{}': external data was not resolved", p.name()));
  if (p.data_type() == TP::STRING)
    throw ModelError(fmt::format("tensor '{}': string tensors are not supported", p.name()));
  at::ScalarType type = scalar_type_for(p.data_type());
  std::vector<int64_t> dims = dims_of(p);
  int64_t n = 1;
  for (int64_t d : dims) {
    if (d < 0) throw ModelError(fmt::format("tensor '{}': negative dimension {}", p.name(), d));
    // Checked: a product past int64 is undefined behaviour (found by fuzz_soundness
    // under UBSan) and no such tensor fits in memory anyway.
    if (__builtin_mul_overflow(n, d, &n) || n > (int64_t{1} << 48))
      throw ModelError(fmt::format("tensor '{}': its dimensions give more than 2^48 elements", p.name()));
  }
  if (p.has_raw_data()) {
    const std::string& raw = p.raw_data();
    int64_t es = element_size(p.data_type());
    if (static_cast<int64_t>(raw.size()) != n * es)
      throw ModelError(fmt::format("tensor '{}': raw data holds {} bytes, its shape needs {}", p.name(), raw.size(), n * es));
    if (p.data_type() == TP::UINT16 || p.data_type() == TP::UINT32 || p.data_type() == TP::UINT64) {
      at::ScalarType stored = p.data_type() == TP::UINT16 ? at::kShort : p.data_type() == TP::UINT32 ? at::kInt : at::kLong;
      at::Tensor bits = at::empty(dims, stored);
      std::memcpy(bits.data_ptr(), raw.data(), raw.size());
      at::Tensor wide = bits.to(at::kLong);
      if (stored != at::kLong) wide = wide.bitwise_and(static_cast<int64_t>(p.data_type() == TP::UINT16 ? 0xFFFF : 0xFFFFFFFFLL));
      return wide.to(type);
    }
    at::Tensor t = at::empty(dims, type);
    if (n > 0) std::memcpy(t.data_ptr(), raw.data(), raw.size());
    return t;
  }
  at::Tensor t = from_typed_fields(p, type, {n});
  if (t.numel() != n)
    throw ModelError(fmt::format("tensor '{}': holds {} values, its shape needs {}", p.name(), t.numel(), n));
  return t.reshape(dims);
}

onnx::TensorProto tensor_to_proto(const at::Tensor& tensor, const std::string& name) {
  return tensor_to_proto(tensor, name, onnx_elem_type_for(tensor.scalar_type()));
}

onnx::TensorProto tensor_to_proto(const at::Tensor& tensor, const std::string& name, int32_t elem_type) {
  TP p;
  p.set_name(name);
  p.set_data_type(elem_type);
  for (int64_t d : tensor.sizes()) p.add_dims(d);
  at::Tensor t = tensor.detach().to(at::kCPU).to(scalar_type_for(elem_type)).contiguous();
  if (elem_type == TP::UINT16) t = t.to(at::kShort);
  if (elem_type == TP::UINT32) t = t.to(at::kInt);
  p.set_raw_data(std::string(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size()));
  return p;
}

}  // namespace nanguard
