#include "harness/fuzz/soundness_case.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include "harness/fuzz/fuzz_layout.h"
#include "model/onnx_loader.h"

namespace nanguard::fuzz {

namespace fs = std::filesystem;

std::vector<std::string> node_test_models(const std::string& root) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    fs::path m = e.path() / "model.onnx";
    if (fs::exists(m, ec)) out.push_back(m.string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

namespace {

// Float inputs that set the output's shape (Resize's roi and scales, OneHot's depth):
// an interval there changes the shape, not the values, so they keep the test's values.
bool decides_shape(const Graph& g, const std::string& input) {
  static const std::map<std::string, std::set<size_t>> kShapeInputs{
      {"Resize", {1, 2}}, {"Upsample", {1}}, {"OneHot", {1}}};
  for (const Node& n : g.nodes) {
    auto it = kShapeInputs.find(n.op_type);
    if (it == kShapeInputs.end()) continue;
    for (size_t k : it->second)
      if (k < n.inputs.size() && n.inputs[k] == input) return true;
  }
  return false;
}

}  // namespace

Result<SoundnessCase> load_soundness_case(const std::string& model_path) {
  auto g = load_model(model_path);
  if (!g.ok()) return g.status();
  SoundnessCase c{std::move(*g), {}};
  fs::path data = fs::path(model_path).parent_path() / "test_data_set_0";
  std::vector<std::string> kept;
  for (size_t i = 0; i < c.graph.inputs.size(); ++i) {
    const std::string& name = c.graph.inputs[i];
    const TensorType* t = c.graph.type_of(name);
    if (t && is_float_elem_type(t->elem_type) && !decides_shape(c.graph, name)) {
      kept.push_back(name);
      c.float_inputs.push_back(name);
      c.elem_types.push_back(t->elem_type);
      continue;
    }
    auto bytes = read_file((data / ("input_" + std::to_string(i) + ".pb")).string());
    onnx::TensorProto value;
    if (!bytes.ok() || !value.ParseFromString(*bytes))
      return Status::Error(model_path + ": no test value for input '" + name + "'");
    value.set_name(name);
    c.graph.initializers[name] = value;
    c.graph.folded_constants.insert(name);
  }
  c.graph.inputs = kept;
  return c;
}

namespace {

float raw_value(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  if (std::isfinite(f)) return f;
  return static_cast<float>(static_cast<int32_t>(bits & 0xffff) - 0x8000);  // NaN/INF patterns: small integers
}

// The nearest finite value of the type (rounding is monotonic, so lo <= hi stays).
double in_type(double v, int32_t elem_type) {
  if (elem_type == onnx::TensorProto::DOUBLE) return v;
  float f = static_cast<float>(v);
  if (elem_type == onnx::TensorProto::FLOAT16) {
    f = std::clamp(f, -65504.0f, 65504.0f);
    return static_cast<float>(c10::Half(f));
  }
  if (elem_type == onnx::TensorProto::BFLOAT16) {
    const float m = static_cast<float>(c10::BFloat16(0x7f7f, c10::BFloat16::from_bits()));  // its largest finite
    return static_cast<float>(c10::BFloat16(std::clamp(f, -m, m)));
  }
  return std::isfinite(f) ? f : std::copysign(FLT_MAX, v);
}

}  // namespace

RangeMap ranges_from_bytes(const SoundnessCase& c, const uint8_t* data, size_t size, size_t at) {
  RangeMap out;
  for (size_t i = 0; i < c.float_inputs.size(); ++i) {
    uint8_t shape = at < size ? data[at] : 0;
    float a = raw_value(load_u32(data, size, at + 1)), b = raw_value(load_u32(data, size, at + 5));
    at += 9;
    Range r;
    switch (shape % 3) {
      case 0: r = {std::min(a, b), std::max(a, b)}; break;
      case 1: {
        double m = std::ldexp(1.0, static_cast<int>(shape / 3) % 80 - 40);
        r = {-m, m};
        break;
      }
      default: r = {a, a}; break;
    }
    out[c.float_inputs[i]] = {in_type(r.lo, c.elem_types[i]), in_type(r.hi, c.elem_types[i])};
  }
  return out;
}

}  // namespace nanguard::fuzz
