#include "model/precision.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <vector>

#include <fmt/core.h>
#include <onnx/defs/schema.h>
#include <onnx/defs/tensor_proto_util.h>
#include <onnx/shape_inference/implementation.h>

namespace nanguard {
namespace {

using TP = onnx::TensorProto;

void convert_type(onnx::ValueInfoProto& vi, int32_t elem) {
  if (vi.type().has_tensor_type() && vi.type().tensor_type().elem_type() == TP::FLOAT)
    vi.mutable_type()->mutable_tensor_type()->set_elem_type(elem);
}

void convert_graph(onnx::GraphProto& g, int32_t elem);

// A Constant's float value_float(s) becomes a `value` tensor of the type.
void convert_constant(onnx::NodeProto& n, int32_t elem) {
  for (int i = 0; i < n.attribute_size(); ++i) {
    onnx::AttributeProto& a = *n.mutable_attribute(i);
    if (a.name() != "value_float" && a.name() != "value_floats") continue;
    TP t;
    t.set_data_type(TP::FLOAT);
    if (a.name() == "value_float") {
      t.add_float_data(a.f());
    } else {
      for (float f : a.floats()) t.add_float_data(f);
      t.add_dims(a.floats_size());
    }
    a.Clear();
    a.set_name("value");
    a.set_type(onnx::AttributeProto::TENSOR);
    *a.mutable_t() = t;
  }
}

void convert_node(onnx::NodeProto& n, int32_t elem) {
  if (n.op_type() == "Constant") convert_constant(n, elem);
  for (onnx::AttributeProto& a : *n.mutable_attribute()) {
    if (a.type() == onnx::AttributeProto::TENSOR) convert_float_tensor(*a.mutable_t(), elem);
    if (a.type() == onnx::AttributeProto::GRAPH) convert_graph(*a.mutable_g(), elem);
    for (onnx::GraphProto& g : *a.mutable_graphs()) convert_graph(g, elem);
    bool type_attr = (n.op_type() == "Cast" && a.name() == "to") || a.name() == "dtype";
    if (type_attr && a.i() == TP::FLOAT) a.set_i(elem);
  }
}

// model.half(): every float32 tensor of the graph (and its subgraphs) in the type.
void convert_graph(onnx::GraphProto& g, int32_t elem) {
  for (TP& t : *g.mutable_initializer()) convert_float_tensor(t, elem);
  for (auto* list : {g.mutable_input(), g.mutable_output(), g.mutable_value_info()})
    for (onnx::ValueInfoProto& vi : *list) convert_type(vi, elem);
  for (onnx::NodeProto& n : *g.mutable_node()) convert_node(n, elem);
}

}  // namespace

uint16_t float16_bits(float f) {
  if (std::isnan(f)) return static_cast<uint16_t>(0x7e00 | (std::signbit(f) ? 0x8000 : 0));
  uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  uint32_t sign = (x >> 16) & 0x8000u, mant = x & 0x7fffffu;
  int exp = static_cast<int>((x >> 23) & 0xff) - 127 + 15;
  if (exp >= 31) return static_cast<uint16_t>(sign | 0x7c00u);
  if (exp <= 0) {
    if (exp < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000u;
    uint32_t shift = static_cast<uint32_t>(14 - exp);
    uint32_t h = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) ++h;
    return static_cast<uint16_t>(sign | h);
  }
  uint32_t h = (static_cast<uint32_t>(exp) << 10) | (mant >> 13), rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) ++h;
  return static_cast<uint16_t>(sign | h);
}


uint16_t bfloat16_bits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if (std::isnan(f)) return static_cast<uint16_t>(((x >> 16) & 0x8000) | 0x7fc0);
  return static_cast<uint16_t>((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

void convert_float_tensor(TP& t, int32_t elem, bool keep_max_finite) {
  if (t.data_type() != TP::FLOAT) return;
  std::vector<float> v = onnx::ParseData<float>(&t);
  float flt_max = std::numeric_limits<float>::max(), top = elem == TP::FLOAT16 ? 65504.0f : 3.38953139e38f;
  std::string raw(2 * v.size(), '\0');
  for (size_t i = 0; i < v.size(); ++i) {
    float x = !keep_max_finite ? v[i] : v[i] == flt_max ? top : v[i] == -flt_max ? -top : v[i];
    uint16_t b = elem == TP::FLOAT16 ? float16_bits(x) : bfloat16_bits(x);
    std::memcpy(&raw[2 * i], &b, 2);
  }
  t.clear_float_data();
  t.set_data_type(elem);
  t.set_raw_data(raw);
}

// Declared in autocast.cc.
Status autocast_graph(onnx::ModelProto& m, int32_t half, const std::string& path);

std::optional<Precision> parse_precision(const std::string& s) {
  for (Precision p : {Precision::kNative, Precision::kFloat16, Precision::kBFloat16, Precision::kAutocastFloat16,
                      Precision::kAutocastBFloat16})
    if (s == to_string(p)) return p;
  return std::nullopt;
}

const char* to_string(Precision p) {
  switch (p) {
    case Precision::kNative: return "native";
    case Precision::kFloat16: return "fp16";
    case Precision::kBFloat16: return "bf16";
    case Precision::kAutocastFloat16: return "autocast-fp16";
    case Precision::kAutocastBFloat16: return "autocast-bf16";
  }
  return "native";
}

Status convert_precision(onnx::ModelProto& m, Precision p, const std::string& path) {
  if (p == Precision::kNative) return Status::Ok();
  bool bf16 = p == Precision::kBFloat16 || p == Precision::kAutocastBFloat16;
  int32_t elem = bf16 ? TP::BFLOAT16 : TP::FLOAT16;
  try {
    if (p == Precision::kFloat16 || p == Precision::kBFloat16) {
      convert_graph(*m.mutable_graph(), elem);
      return Status::Ok();
    }
    return autocast_graph(m, elem, path);
  } catch (const std::exception& e) {
    return Status::Error(fmt::format("{}: --precision {}: {}", path, to_string(p), e.what()));
  }
}

}  // namespace nanguard
