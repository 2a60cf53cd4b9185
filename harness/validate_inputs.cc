#include "harness/validate_inputs.h"

#include <algorithm>
#include <functional>
#include <filesystem>

#include <fmt/core.h>

#include "harness/reproducer.h"
#include "model/onnx_loader.h"
#include "oracle/input_source.h"
#include "ops/tensor_proto.h"

namespace nanguard {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> sorted_subdirs(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_directory()) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

// `dir` itself and its subfolders (sorted), those for which `holds` is true; an error
// naming `what` when there is none.
Result<std::vector<std::string>> folders_holding(const std::string& dir, const std::function<bool(const std::string&)>& holds,
                                                 const std::string& what) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return Status::Error(fmt::format("{}: not a directory", dir));
  std::vector<std::string> dirs;
  if (holds(dir)) dirs.push_back(dir);
  for (const auto& d : sorted_subdirs(dir))
    if (holds(d)) dirs.push_back(d);
  if (dirs.empty()) return Status::Error(fmt::format("{}: no {}", dir, what));
  return dirs;
}

bool holds_tensors(const std::string& dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file() && e.path().extension() == ".pb") return true;
  return false;
}

// NAME.pb for every input when all are there, else input_N.pb.
Result<TensorMap> read_input_set(const std::string& dir, const Graph& graph) {
  bool by_name = std::all_of(graph.inputs.begin(), graph.inputs.end(),
                             [&](const std::string& n) { return fs::exists(fs::path(dir) / (n + ".pb")); });
  TensorMap set;
  for (size_t i = 0; i < graph.inputs.size(); ++i) {
    const std::string& name = graph.inputs[i];
    fs::path file = fs::path(dir) / (by_name ? name + ".pb" : fmt::format("input_{}.pb", i));
    if (!fs::exists(file))
      return Status::Error(fmt::format("{}: no {}.pb nor input_{}.pb for input '{}'", dir, name, i, name));
    auto t = read_tensor_file(file.string());
    if (!t.ok()) return t.status();
    set[name] = *t;
  }
  return set;
}

Result<ReplayCase> read_case(const std::string& dir, const Graph& fixed) {
  auto header = read_reproducer_header(dir);
  if (!header.ok()) return header.status();
  auto graph = load_model(header->model_path);
  if (!graph.ok()) return graph.status();
  auto rep = read_reproducer(dir, *graph);
  if (!rep.ok()) return rep.status();
  fs::path p = fs::path(dir).lexically_normal();
  ReplayCase c{(p.has_filename() ? p.filename() : p.parent_path().filename()).string(), rep->finding, rep->inputs};
  for (auto& [name, t] : shared_weights(*graph, fixed)) c.feeds.emplace(name, t);
  return c;
}

}  // namespace

TensorMap shared_weights(const Graph& from, const Graph& to) {
  TensorMap out;
  for (const auto& [name, proto] : from.initializers) {
    auto it = to.initializers.find(name);
    if (it == to.initializers.end() || !std::equal(proto.dims().begin(), proto.dims().end(), it->second.dims().begin(),
                                                   it->second.dims().end()))
      continue;
    try {
      out[name] = tensor_from_proto(proto);
    } catch (const std::exception&) {
      continue;  // a type the executor would not take either
    }
  }
  return out;
}

Result<std::vector<ReplayCase>> read_reproducers(const std::string& dir, const Graph& fixed) {
  auto dirs = folders_holding(dir, [](const std::string& d) { return fs::exists(fs::path(d) / "model.onnx"); },
                              "reproducer directories (DIR/NAME/model.onnx)");
  if (!dirs.ok()) return dirs.status();
  std::vector<ReplayCase> cases;
  for (const auto& d : *dirs) {
    auto c = read_case(d, fixed);
    if (!c.ok()) return c.status();
    cases.push_back(std::move(*c));
  }
  return cases;
}

Result<std::vector<TensorMap>> read_input_sets(const std::string& dir, const Graph& graph) {
  auto dirs = folders_holding(dir, holds_tensors, "TensorProto files (NAME.pb or input_N.pb)");
  if (!dirs.ok()) return dirs.status();
  std::vector<TensorMap> sets;
  for (const auto& d : *dirs) {
    auto s = read_input_set(d, graph);
    if (!s.ok()) return s.status();
    sets.push_back(std::move(*s));
  }
  return sets;
}

}  // namespace nanguard
