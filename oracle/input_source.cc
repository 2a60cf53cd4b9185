#include "oracle/input_source.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/core.h>
#include <fmt/ranges.h>

#include "ops/tensor_proto.h"

namespace nanguard {
namespace {

bool parse_double(const std::string& s, double& out) {
  try {
    size_t used = 0;
    out = std::stod(s, &used);
    return used == s.size() && std::isfinite(out);
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

Result<std::pair<std::string, std::string>> parse_assignment(const std::string& spec, const std::string& flag) {
  auto eq = spec.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
    return Status::Error(fmt::format("{} '{}': expected NAME=VALUE", flag, spec));
  return std::make_pair(spec.substr(0, eq), spec.substr(eq + 1));
}

Result<std::pair<std::string, Range>> parse_range(const std::string& spec) {
  auto kv = parse_assignment(spec, "--range");
  if (!kv.ok()) return kv.status();
  const std::string& v = kv->second;
  auto comma = v.find(',');
  Range r;
  if (comma == std::string::npos || !parse_double(v.substr(0, comma), r.lo) ||
      !parse_double(v.substr(comma + 1), r.hi))
    return Status::Error(fmt::format("--range '{}': expected NAME=LO,HI with finite numbers", spec));
  if (r.lo > r.hi) return Status::Error(fmt::format("--range '{}': LO is greater than HI", spec));
  return std::make_pair(kv->first, r);
}

Result<at::Tensor> read_tensor_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Error(fmt::format("{}: cannot open tensor file", path));
  std::ostringstream ss;
  ss << in.rdbuf();
  onnx::TensorProto proto;
  if (!proto.ParseFromString(ss.str())) return Status::Error(fmt::format("{}: not a TensorProto file", path));
  try {
    return tensor_from_proto(proto);
  } catch (const std::exception& e) {
    return Status::Error(fmt::format("{}: {}", path, e.what()));
  }
}

Status write_tensor_file(const at::Tensor& t, const std::string& name, const std::string& path, int32_t elem_type) {
  onnx::TensorProto proto;
  try {
    proto = elem_type ? tensor_to_proto(t, name, elem_type) : tensor_to_proto(t, name);
  } catch (const std::exception& e) {
    return Status::Error(fmt::format("{}: {}", path, e.what()));
  }
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out || !proto.SerializeToOstream(&out)) return Status::Error(fmt::format("{}: cannot write", path));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return Status::Error(fmt::format("{}: cannot write: {}", path, ec.message()));
  return Status::Ok();
}

Status check_range_names(const Graph& graph, const RangeMap& ranges) {
  for (const auto& [name, r] : ranges) {
    if (std::find(graph.inputs.begin(), graph.inputs.end(), name) == graph.inputs.end())
      return Status::Error(fmt::format("{}: --range names '{}', which is not an input of the model", graph.model_path, name));
  }
  return Status::Ok();
}

namespace {

// One input's values, uniform in `r`. A shape LibTorch cannot lay out (strides past
// int64 beside a 0 dimension) is an error, not an exception out of the draw.
Result<at::Tensor> draw_input(const std::vector<int64_t>& dims, at::ScalarType st, const Range& r, at::Generator& gen) {
  bool is_float = at::isFloatingType(st);
  try {
    at::Tensor t;
    if (is_float) {
      t = at::empty(dims, at::kDouble).uniform_(r.lo, r.hi, gen);
      if (st == at::kFloat || st == at::kDouble) {
        t = at::clamp(t.to(st), r.lo, r.hi);  // rounding to float32 must not leave the range
      } else {  // float16, bfloat16: CPU has no clamp kernel for them; round, then compare in double
        t = t.to(st);
        at::Tensor back = t.to(at::kDouble);
        at::Tensor outside = (back < r.lo).logical_or(back > r.hi);
        t = at::where(outside, at::scalar_tensor((r.lo + r.hi) / 2, at::kDouble).to(st), t);
      }
    } else if (st == at::kBool) {
      t = at::empty(dims, at::kLong).random_(0, 2, gen).to(at::kBool);
    } else {
      int64_t lo = static_cast<int64_t>(std::ceil(r.lo)), hi = static_cast<int64_t>(std::floor(r.hi));
      if (lo > hi) return Status::Error("range holds no integer");
      t = at::empty(dims, at::kLong).random_(lo, hi + 1, gen).to(st);
    }
    return t;
  } catch (const std::exception& e) {
    return Status::Error(fmt::format("cannot draw values of shape [{}]: {}", fmt::join(dims, ", "), first_line(e.what())));
  }
}

}  // namespace

Result<TensorMap> random_inputs(const Graph& graph, const RangeMap& ranges, uint64_t seed, const TensorMap& given) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  TensorMap feeds = given;
  for (const auto& name : graph.inputs) {
    if (feeds.count(name)) continue;
    const TensorType* type = graph.type_of(name);
    if (type && type->kind != TensorType::Kind::kTensor)
      return Status::Error(fmt::format("{}: input '{}' is a {} value; random inputs are drawn for tensors only",
                                       graph.model_path, name, type->non_tensor_kind()));
    if (!type || !type->dims)
      return Status::Error(fmt::format("{}: input '{}' has no known shape; give it with --input", graph.model_path, name));
    for (int64_t d : *type->dims)
      if (d < 0) return Status::Error(fmt::format("{}: input '{}' has an unknown dimension; bind it with --dim", graph.model_path, name));
    at::ScalarType st;
    try {
      st = scalar_type_for(type->elem_type);
    } catch (const std::exception& e) {
      return Status::Error(fmt::format("{}: input '{}': {}", graph.model_path, name, e.what()));
    }
    bool is_float = at::isFloatingType(st);
    auto it = ranges.find(name);
    Range r = it != ranges.end() ? it->second : (is_float ? kDefaultFloatRange : kDefaultIntRange);
    auto t = draw_input(*type->dims, st, r, gen);
    if (!t.ok()) return Status::Error(fmt::format("{}: input '{}': {}", graph.model_path, name, t.status().message()));
    feeds[name] = std::move(*t);
  }
  return feeds;
}

}  // namespace nanguard
