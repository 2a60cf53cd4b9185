// Turns a Constant node's attribute (value, value_float, value_ints, ...) into the
// tensor it denotes, so Constant nodes become initializers at load time.
#pragma once

#include "model/graph.h"

namespace nanguard {

// Throws ModelError for a Constant without a supported value attribute.
onnx::TensorProto constant_tensor(const Node& node);

}  // namespace nanguard
