// Builds small ONNX models in memory for tests: inputs, nodes, initializers, outputs.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <onnx/onnx_pb.h>

namespace nanguard::testing {

class ModelBuilder {
 public:
  explicit ModelBuilder(int64_t opset = 13);
  ModelBuilder& input(const std::string& name, std::vector<int64_t> dims,
                      int32_t elem_type = onnx::TensorProto::FLOAT);
  ModelBuilder& symbolic_input(const std::string& name, std::vector<std::string> dims);
  // The checker wants a shape on graph outputs; -1 leaves a dimension unknown.
  ModelBuilder& output(const std::string& name, std::vector<int64_t> dims,
                       int32_t elem_type = onnx::TensorProto::FLOAT);
  ModelBuilder& initializer(const std::string& name, const at::Tensor& value);
  // Adds a node; returns it so the test can add attributes.
  onnx::NodeProto& node(const std::string& op_type, std::vector<std::string> inputs,
                        std::vector<std::string> outputs, const std::string& name = "");
  onnx::ModelProto& proto() { return model_; }
  std::string bytes() const;
  // Writes the model to a fresh file under the test tmp folder; returns its path.
  std::string save(const std::string& file_name) const;

 private:
  onnx::ModelProto model_;
};

void set_attr(onnx::NodeProto& node, const std::string& name, int64_t value);
void set_attr(onnx::NodeProto& node, const std::string& name, float value);
void set_attr(onnx::NodeProto& node, const std::string& name, const std::vector<int64_t>& value);
std::string test_tmp_dir();

// y = log(x) for x of shape `dims`; with `clip_min`, the fixed form a fix writes:
// y = log(clip(x, clip_min)), the Clip named "nanguard_fix/clip".
ModelBuilder log_model(std::vector<int64_t> dims, std::optional<float> clip_min = std::nullopt);

// y = log(x + 1 + 1 + 1 + 1 + 1 - x - 4.5) = log(0.5) for x of shape [1, 4], the Log
// named "log": a false alarm of a symbolic window too short to meet x twice.
ModelBuilder cancelling_log_model();

// `layers` random 3x3 Conv (zero padding, kaiming-normal weights, seeded) + Relu over
// `channels` channels of an 8x8 map, x -> y: intervals grow by up to the rows' sum of
// |W| per layer while real values stay near 1.
ModelBuilder random_conv_stack(int layers, int64_t channels);

}  // namespace nanguard::testing
