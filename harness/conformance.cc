#include "harness/conformance.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <onnx/onnx-data_pb.h>

#include <fmt/core.h>

#include "model/onnx_loader.h"
#include "oracle/executor.h"
#include "oracle/input_source.h"
#include "ops/op_registry.h"
#include "ops/tensor_proto.h"

namespace nanguard {
namespace {

namespace fs = std::filesystem;

// Ops whose values depend on the generator, not on the spec.
const std::set<std::string> kRandomOps{"RandomNormal", "RandomUniform", "RandomNormalLike",
                                       "RandomUniformLike", "Bernoulli", "Multinomial"};

ConformanceResult skip(ConformanceResult r, std::string why) {
  r.verdict = Verdict::kSkipped;
  r.reason = std::move(why);
  return r;
}
ConformanceResult fail(ConformanceResult r, std::string why) {
  r.verdict = Verdict::kFailed;
  r.reason = std::move(why);
  return r;
}

// ONNX 1.12's test data stores bfloat16 tensors as UINT16 bit patterns.
at::Tensor as_declared(const at::Tensor& t, const TensorType* type) {
  bool bits = t.scalar_type() == at::kInt || t.scalar_type() == at::kShort;
  if (type && type->elem_type == onnx::TensorProto::BFLOAT16 && bits) return t.to(at::kShort).view(at::kBFloat16);
  return t;
}

// Empty string when `got` matches `want` (shape, values within tolerance, NaN where NaN).
std::string compare(const at::Tensor& got_in, const at::Tensor& want_in, const ConformanceOptions& opt) {
  at::Tensor got = got_in.detach().to(at::kCPU), want = want_in.detach().to(at::kCPU);
  if (got.sizes() != want.sizes())
    return fmt::format("shape {} expected {}", c10::str(got.sizes()), c10::str(want.sizes()));
  if (got.numel() == 0) return "";
  if (want.scalar_type() == at::kBool || got.scalar_type() == at::kBool) {
    return at::equal(got.to(at::kBool), want.to(at::kBool)) ? "" : "boolean values differ";
  }
  if (!at::isFloatingType(want.scalar_type())) {
    return at::equal(got.to(at::kLong), want.to(at::kLong)) ? "" : fmt::format("integer values differ (max |diff| {})", (got.to(at::kLong) - want.to(at::kLong)).abs().max().item<int64_t>());
  }
  at::Tensor g = got.to(at::kDouble), w = want.to(at::kDouble);
  at::Tensor nan_mismatch = g.isnan().logical_xor(w.isnan());
  if (nan_mismatch.any().item<bool>()) return "NaN positions differ";
  at::Tensor both = g.isnan().logical_not();
  at::Tensor gg = g.masked_select(both), ww = w.masked_select(both);
  at::Tensor inf_mismatch = (gg.isinf().logical_or(ww.isinf())).logical_and(gg != ww);
  if (inf_mismatch.any().item<bool>()) return "INF values differ";
  at::Tensor fin = gg.isfinite();
  gg = gg.masked_select(fin); ww = ww.masked_select(fin);
  at::Tensor diff = (gg - ww).abs();
  at::Tensor bad = diff > (opt.atol + opt.rtol * ww.abs());
  if (bad.any().item<bool>())
    return fmt::format("values differ: max |diff| {:.3g}", diff.max().item<double>());
  return "";
}

std::vector<at::Tensor> sequence_items(const onnx::SequenceProto& seq, const TensorType* type) {
  if (seq.elem_type() != onnx::SequenceProto::TENSOR && seq.tensor_values_size() == 0) return {};
  if (seq.elem_type() != onnx::SequenceProto::TENSOR) throw ModelError("a sequence of non-tensors");
  std::vector<at::Tensor> items;
  for (const auto& t : seq.tensor_values()) items.push_back(as_declared(tensor_from_proto(t), type));
  return items;
}

// A test data file as the value its graph input or output declares: a TensorProto,
// a SequenceProto, or an OptionalProto (elem_type UNDEFINED: empty).
Result<OpValue> read_value_file(const std::string& path, const TensorType* type) {
  auto kind = type ? type->kind : TensorType::Kind::kTensor;
  if (kind == TensorType::Kind::kTensor) {
    auto t = read_tensor_file(path);
    if (!t.ok()) return t.status();
    return OpValue::of(as_declared(*t, type));
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  try {
    if (kind == TensorType::Kind::kSequence) {
      onnx::SequenceProto seq;
      if (!seq.ParseFromString(ss.str())) return Status::Error(path + ": not a SequenceProto file");
      return OpValue::sequence(sequence_items(seq, type));
    }
    onnx::OptionalProto opt;
    if (!opt.ParseFromString(ss.str())) return Status::Error(path + ": not an OptionalProto file");
    if (opt.elem_type() == onnx::OptionalProto::UNDEFINED) return OpValue::none();
    if (opt.has_tensor_value()) return OpValue::of(as_declared(tensor_from_proto(opt.tensor_value()), type));
    if (opt.has_sequence_value()) return OpValue::sequence(sequence_items(opt.sequence_value(), type));
    if (opt.elem_type() == onnx::OptionalProto::SEQUENCE) return OpValue::sequence({});
    return Status::Error(path + ": an optional of a type other than tensor or sequence");
  } catch (const std::exception& e) {
    return Status::Error(fmt::format("{}: {}", path, e.what()));
  }
}

// compare() for values: kinds, sequence lengths, then each tensor.
std::string compare_values(const OpValue& got, const OpValue& want, const ConformanceOptions& opt) {
  if (got.kind != want.kind) return fmt::format("a {} where a {} is expected", got.describe(), want.describe());
  if (got.is_tensor()) return compare(got.tensor, want.tensor, opt);
  if (got.items.size() != want.items.size()) return fmt::format("a {} where a {} is expected", got.describe(), want.describe());
  for (size_t i = 0; i < got.items.size(); ++i)
    if (std::string d = compare(got.items[i], want.items[i], opt); !d.empty()) return fmt::format("element {}: {}", i, d);
  return "";
}

std::vector<std::string> data_files(const fs::path& set, const std::string& prefix) {
  std::vector<std::string> files;
  for (int i = 0;; ++i) {
    fs::path p = set / fmt::format("{}_{}.pb", prefix, i);
    if (!fs::exists(p)) break;
    files.push_back(p.string());
  }
  return files;
}

ConformanceResult run_set(ConformanceResult r, const Graph& g, const Executor& ex, const fs::path& set,
                          const ConformanceOptions& opt) {
  auto inputs = data_files(set, "input");
  auto outputs = data_files(set, "output");
  TensorMap feeds;
  ValueMap other_feeds;
  if (inputs.size() != g.inputs.size())
    return skip(r, fmt::format("{} input files for {} graph inputs", inputs.size(), g.inputs.size()));
  for (size_t i = 0; i < inputs.size(); ++i) {
    auto v = read_value_file(inputs[i], g.type_of(g.inputs[i]));
    if (!v.ok()) return skip(r, "input is not a supported value: " + v.status().message());
    if (v->is_tensor()) feeds[g.inputs[i]] = v->tensor;
    else other_feeds[g.inputs[i]] = *v;
  }
  std::vector<OpValue> expected;
  for (size_t i = 0; i < outputs.size(); ++i) {
    auto v = read_value_file(outputs[i], i < g.outputs.size() ? g.type_of(g.outputs[i]) : nullptr);
    if (!v.ok()) return skip(r, "expected output is not a supported value: " + v.status().message());
    expected.push_back(*v);
  }
  auto run = ex.run(feeds, other_feeds);
  if (!run.ok()) {
    const std::string& m = run.status().message();
    bool unsupported = m.find("not supported") != std::string::npos;
    return unsupported ? skip(r, m.substr(m.find(": ") + 2)) : fail(r, m.substr(m.find(": ") + 2));
  }
  for (size_t i = 0; i < expected.size() && i < run->outputs.size(); ++i) {
    auto other = run->others.find(g.outputs[i]);
    OpValue got = other != run->others.end() ? other->second : OpValue::of(run->outputs[i]);
    std::string diff = compare_values(got, expected[i], opt);
    if (!diff.empty()) return fail(r, fmt::format("output {} ('{}'): {}", i, g.outputs[i], diff));
  }
  r.verdict = Verdict::kPassed;
  return r;
}

}  // namespace

ConformanceResult run_conformance_test(const std::string& dir, const std::string& label, const ConformanceOptions& opt) {
  ConformanceResult r;
  r.test = label;
  auto graph = load_model((fs::path(dir) / "model.onnx").string());
  if (!graph.ok()) {
    // Still attribute the skip to the op types the file names.
    onnx::ModelProto proto;
    std::ifstream in(fs::path(dir) / "model.onnx", std::ios::binary);
    if (proto.ParseFromIstream(&in))
      for (const auto& n : proto.graph().node()) r.op_types.insert(n.op_type());
    const std::string& m = graph.status().message();
    return skip(r, "load: " + m.substr(m.find(": ") + 2));
  }
  for (const Node& n : graph->nodes) r.op_types.insert(n.domain.empty() ? n.op_type : n.domain + "." + n.op_type);
  if (graph->nodes.empty()) r.op_types.insert("Constant");
  auto missing = unsupported_op_types(*graph);
  if (!missing.empty()) return skip(r, "unsupported op " + missing.front());
  for (const auto& op : r.op_types)
    if (kRandomOps.count(op)) return skip(r, "random op: values depend on the generator");
  ExecOptions eopt;
  // The expected outputs of float64 tests need float64 arithmetic.
  for (const auto& in : graph->inputs)
    if (graph->type_of(in) && graph->type_of(in)->elem_type == onnx::TensorProto::DOUBLE) eopt.float_type = at::kDouble;
  auto ex = Executor::create(*graph, eopt);
  if (!ex.ok()) return skip(r, ex.status().message());
  std::vector<fs::path> sets;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0) sets.push_back(e.path());
  std::sort(sets.begin(), sets.end());
  if (sets.empty()) return skip(r, "no test data");
  for (const auto& set : sets) {
    r = run_set(r, *graph, *ex, set, opt);
    if (r.verdict != Verdict::kPassed) return r;
  }
  return r;
}

std::vector<std::pair<std::string, std::string>> list_conformance_tests(const std::vector<std::string>& suites) {
  std::vector<std::pair<std::string, std::string>> tests;
  for (const auto& suite : suites) {
    if (!fs::is_directory(suite)) continue;
    std::string suite_name = fs::path(suite).filename().string();
    for (const auto& e : fs::directory_iterator(suite))
      if (fs::exists(e.path() / "model.onnx"))
        tests.emplace_back(e.path().string(), suite_name + "/" + e.path().filename().string());
  }
  std::sort(tests.begin(), tests.end(), [](auto& a, auto& b) { return a.second < b.second; });
  return tests;
}

}  // namespace nanguard
