#include "harness/fuzz/model_runner.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <unordered_set>

#include <fmt/core.h>

#include "harness/reproducer.h"
#include "model/onnx_loader.h"
#include "oracle/nonfinite.h"

namespace nanguard::fuzz {
namespace {

// The bits of |x|: ordered like the magnitudes, exponent in bits 23..30.
uint32_t magnitude_bits(float x) {
  uint32_t b;
  std::memcpy(&b, &x, 4);
  return b & 0x7fffffffu;
}

// The hot path's check: one loop over float32 memory instead of three ATen calls;
// it records the extreme magnitudes on the way (for the magnitude counters).
bool has_nonfinite(const at::Tensor& t, bool* has_nan, uint32_t* lo_bits = nullptr, uint32_t* hi_bits = nullptr) {
  if (!t.defined() || !at::isFloatingType(t.scalar_type())) return false;
  if (t.scalar_type() == at::kFloat && t.is_contiguous() && t.device().is_cpu()) {
    const float* p = t.data_ptr<float>();
    uint32_t lo = 0x7f800000u, hi = 0;
    for (int64_t i = 0, n = t.numel(); i < n; ++i) {
      uint32_t m = magnitude_bits(p[i]);
      if (m >= 0x7f800000u) {
        *has_nan = m > 0x7f800000u;
        return true;
      }
      lo = std::min(lo, m);
      hi = std::max(hi, m);
    }
    if (lo_bits) *lo_bits = lo, *hi_bits = hi;
    return false;
  }
  NonFiniteRecord r = count_nonfinite(t.detach());
  *has_nan = r.nan_count > 0;
  return r.nan_count || r.inf_count;
}

at::ScalarType scalar_type_of(int32_t elem_type) {
  switch (elem_type) {
    case onnx::TensorProto::INT64: return at::kLong;
    case onnx::TensorProto::INT32: return at::kInt;
    case onnx::TensorProto::BOOL: return at::kBool;
    case onnx::TensorProto::DOUBLE: return at::kDouble;
    default: return at::kFloat;
  }
}

std::string safe_name(const std::string& s) {
  std::string out;
  for (char c : s) out += std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' ? c : '_';
  while (!out.empty() && (out.front() == '_' || out.front() == '.')) out.erase(out.begin());
  return out.substr(0, 80);
}

}  // namespace

Result<std::unique_ptr<ModelRunner>> ModelRunner::open(const std::string& dir) {
  auto config = read_config(dir);
  if (!config.ok()) return config.status();
  std::unique_ptr<ModelRunner> r(new ModelRunner());
  r->config_ = std::move(*config);
  LoadOptions lo;
  lo.dims = r->config_.dims;
  auto g = load_model((std::filesystem::path(dir) / r->config_.model).string(), lo);
  if (!g.ok()) return g.status();
  r->graph_ = std::move(*g);
  ExecOptions eo;
  eo.keep_intermediates = false;
  auto ex = Executor::create(r->graph_, eo);
  if (!ex.ok()) return ex.status();
  r->exec_.emplace(std::move(*ex));
  for (const auto& s : r->config_.layout.slots) {
    at::Tensor stored;
    auto it = r->exec_->weights().find(s.name);
    if (s.weight && it != r->exec_->weights().end() && it->second.numel() == s.numel())
      stored = it->second.to(at::kFloat).contiguous();
    r->stored_.push_back(stored);
  }
  for (const auto& f : r->config_.findings)
    if (f.kind == "gradient") r->gradient_findings_.push_back(&f);
  if (!r->gradient_findings_.empty()) {
    eo.keep_intermediates = true;  // the operands' gradients are read after the run
    auto gx = Executor::create(r->graph_, eo);
    if (!gx.ok()) return gx.status();
    r->grad_exec_.emplace(std::move(*gx));
  }
  return r;
}

TensorMap ModelRunner::feeds(const uint8_t* data, size_t size) const {
  TensorMap out;
  const FuzzLayout& layout = config_.layout;
  for (size_t i = 0; i < layout.slots.size(); ++i) {
    const TensorSlot& s = layout.slots[i];
    if (s.integer) {
      at::Tensor t = at::empty(s.shape, at::kLong);
      fill_int(data, size, layout, i, t.data_ptr<int64_t>());
      at::ScalarType want = scalar_type_of(s.elem_type);
      out[s.name] = want == at::kLong ? t : t.to(want);
    } else {
      at::Tensor t = at::empty(s.shape, at::kFloat);
      fill_float(data, size, layout, i, stored_[i].defined() ? stored_[i].data_ptr<float>() : nullptr,
                 t.data_ptr<float>());
      out[s.name] = t;
    }
  }
  return out;
}

std::vector<ModelFailure> ModelRunner::run(const TensorMap& feeds) const {
  std::vector<ModelFailure> failures;
  std::unordered_set<std::string> bad;  // tensors holding NaN/INF so far
  auto hook = [&](const Node& node, const std::vector<at::Tensor>& outputs) {
    bool nan = false, any = false, at_origin = true;
    for (const auto& t : outputs) {
      uint32_t lo = 0x7f800000u, hi = 0x7f800000u;
      any = has_nonfinite(t, &nan, &lo, &hi) || any;
      if (counters_ && hi < 0x7f800000u) {  // bands of 16 binary exponents
        size_t base = static_cast<size_t>(node.index) * 32;
        counters_[(base + (hi >> 27)) % counters_size_] = 1;
        counters_[(base + 16 + (lo >> 27)) % counters_size_] = 1;
      }
    }
    if (!any) return;
    for (const auto& in : node.inputs) at_origin = at_origin && !bad.count(in);
    for (const auto& o : node.outputs) bad.insert(o);
    if (at_origin) failures.push_back({node.name, node.op_type, failure_hazard(config_, node.name, nan)});
  };
  auto r = exec_->run(feeds, hook);
  if (!r.ok()) {
    failures.push_back({"", "", "crash", "crash", 0, r.status().message()});
    return failures;
  }
  if (failures.empty() && !gradient_findings_.empty()) gradient_failures(feeds, failures);
  return failures;
}

// A backward pass from the scalar loss (else the sum of the float outputs), as
// solver/confirm.cc judges gradient witnesses: the node's operand gets a NaN/INF
// gradient while its output's gradient is finite.
void ModelRunner::gradient_failures(const TensorMap& feeds, std::vector<ModelFailure>& out) const {
  TensorMap grad_feeds;
  for (const auto& [name, t] : feeds)
    grad_feeds[name] = at::isFloatingType(t.scalar_type()) ? t.detach().clone().requires_grad_(true) : t;
  std::vector<std::pair<const KnownFinding*, std::pair<at::Tensor, at::Tensor>>> watched;
  auto r = grad_exec_->run(grad_feeds);
  if (!r.ok()) return;
  at::Tensor root;
  for (const auto& o : r->outputs)
    if (o.defined() && at::isFloatingType(o.scalar_type()) && o.requires_grad())
      root = root.defined() ? root + o.sum() : o.sum();
  if (!root.defined()) return;
  for (const KnownFinding* f : gradient_findings_) {
    const Node* node = graph_.find_node(f->node);
    if (!node || f->operand >= static_cast<int>(node->inputs.size())) continue;
    auto x = r->values.find(node->inputs[f->operand]);
    auto y = r->values.find(node->outputs[0]);
    if (x == r->values.end() || y == r->values.end() || !x->second.requires_grad()) continue;
    if (!x->second.is_leaf()) x->second.retain_grad();
    if (!y->second.is_leaf()) y->second.retain_grad();
    watched.push_back({f, {x->second, y->second}});
  }
  if (watched.empty()) return;
  root.backward();
  for (const auto& [f, xy] : watched) {
    bool nan = false, ignored = false;
    const at::Tensor& gx = xy.first.grad();
    const at::Tensor& gy = xy.second.grad();
    if (gy.defined() && has_nonfinite(gy, &ignored)) continue;
    if (gx.defined() && has_nonfinite(gx, &nan))
      out.push_back({f->node, f->op, f->hazard, "gradient", f->operand, "NaN/INF gradient of its operand"});
  }
}

std::string ModelRunner::reproducer_dir(const std::string& out, const ModelFailure& f) const {
  std::string node = f.node.empty() ? "run" : safe_name(f.node);
  return (std::filesystem::path(out) / (node + "-" + f.hazard)).string();
}

Status ModelRunner::write_reproducer(const ModelFailure& f, const TensorMap& feeds, const std::string& dir) const {
  if (f.node.empty()) return Status::Error("the run stopped: " + f.detail);
  Finding finding;
  finding.node = f.node;
  finding.op_type = f.op;
  finding.hazard = f.hazard;
  finding.kind = f.kind == "gradient" ? HazardKind::kGradient : HazardKind::kForward;
  ReproducerSpec spec{finding, f.operand, feeds, {"cpu"}, "fuzz", config_.source_model,
                      "Found by fuzz_model (libFuzzer): the inputs and free weights are one fuzz input decoded into "
                      "their ranges."};
  return nanguard::write_reproducer(graph_, spec, dir);
}

}  // namespace nanguard::fuzz
