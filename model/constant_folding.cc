#include "model/constant_folding.h"

#include <fmt/core.h>

#include "model/attributes.h"
#include "model/status.h"

namespace nanguard {

onnx::TensorProto constant_tensor(const Node& node) {
  using TP = onnx::TensorProto;
  TP t;
  if (has_attr(node, "value")) {
    t = attr_tensor(node, "value");
  } else if (has_attr(node, "value_float")) {
    t.set_data_type(TP::FLOAT);
    t.add_float_data(attr_float(node, "value_float"));
  } else if (has_attr(node, "value_floats")) {
    t.set_data_type(TP::FLOAT);
    for (float f : attr_floats(node, "value_floats")) t.add_float_data(f);
    t.add_dims(t.float_data_size());
  } else if (has_attr(node, "value_int")) {
    t.set_data_type(TP::INT64);
    t.add_int64_data(attr_int(node, "value_int"));
  } else if (has_attr(node, "value_ints")) {
    t.set_data_type(TP::INT64);
    for (int64_t v : attr_ints(node, "value_ints")) t.add_int64_data(v);
    t.add_dims(t.int64_data_size());
  } else if (has_attr(node, "value_string") || has_attr(node, "value_strings")) {
    throw ModelError(fmt::format("node '{}' (Constant): string constants are not supported", node.name));
  } else if (has_attr(node, "sparse_value")) {
    throw ModelError(fmt::format("node '{}' (Constant): sparse constants are not supported", node.name));
  } else {
    throw ModelError(fmt::format("node '{}' (Constant): no value attribute", node.name));
  }
  t.set_name(node.outputs.at(0));
  return t;
}

}  // namespace nanguard
