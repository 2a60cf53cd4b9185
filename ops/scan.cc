// Scan (opset 8: batch axis 0, scan axis 1, sequence_lens, directions; opset 9+:
// scan_input_axes / _directions, scan_output_axes / _directions). The number of
// iterations is the scan axis' length, always static: the analysis unrolls up to
// kUnrollCap of them, then covers the rest by a widened fixpoint over the states
// with each scan input's element bounded by the hull of its remaining slices.
#include <algorithm>

#include <ATen/ATen.h>
#include <fmt/core.h>
#include <fmt/ranges.h>

#include "ops/loop_bounds.h"
#include "ops/op_registry.h"

namespace nanguard {
namespace {

struct ScanSpec {
  size_t first = 0;  // index of the first state input (1 in opset 8: sequence_lens)
  size_t states = 0, inputs = 0, outputs = 0;
  std::vector<int64_t> in_axes, in_dirs, out_axes, out_dirs;
};

std::vector<int64_t> ints_or_zeros(const Node& n, const std::string& name, size_t count) {
  auto v = attr_ints_opt(n, name);
  return v ? *v : std::vector<int64_t>(count, 0);
}

template <class Ctx>
ScanSpec scan_spec(const Ctx& c) {
  const Graph& body = attr_graph(c.node, "body");
  ScanSpec s;
  s.first = c.opset < 9 ? 1 : 0;
  s.inputs = static_cast<size_t>(attr_int(c.node, "num_scan_inputs"));
  if (c.num_inputs() < s.first + s.inputs) c.fail("fewer inputs than num_scan_inputs");
  s.states = c.num_inputs() - s.first - s.inputs;
  if (body.inputs.size() != s.states + s.inputs || body.outputs.size() < s.states)
    c.fail(fmt::format("the body takes {} inputs and returns {} outputs for {} states and {} scan inputs",
                       body.inputs.size(), body.outputs.size(), s.states, s.inputs));
  s.outputs = body.outputs.size() - s.states;
  s.in_axes = c.opset < 9 ? std::vector<int64_t>(s.inputs, 0) : ints_or_zeros(c.node, "scan_input_axes", s.inputs);
  s.in_dirs = ints_or_zeros(c.node, c.opset < 9 ? "directions" : "scan_input_directions", s.inputs);
  s.out_axes = ints_or_zeros(c.node, "scan_output_axes", s.outputs);
  s.out_dirs = ints_or_zeros(c.node, "scan_output_directions", s.outputs);
  if (s.in_axes.size() != s.inputs || s.in_dirs.size() != s.inputs || s.out_axes.size() != s.outputs ||
      s.out_dirs.size() != s.outputs)
    c.fail("an axes or directions attribute does not have one entry per scan input / output");
  return s;
}

// Scan axes made non-negative, and the common length along them.
template <class Ctx>
int64_t scan_length(const Ctx& c, ScanSpec& s, const std::vector<std::vector<int64_t>>& shapes) {
  int64_t length = -1;
  for (size_t j = 0; j < s.inputs; ++j) {
    int64_t rank = static_cast<int64_t>(shapes[j].size()), axis = s.in_axes[j] < 0 ? s.in_axes[j] + rank : s.in_axes[j];
    if (axis < 0 || axis >= rank) c.fail(fmt::format("scan input {}: axis {} is out of range for rank {}", j, s.in_axes[j], rank));
    s.in_axes[j] = axis;
    if (length >= 0 && shapes[j][axis] != length) c.fail("the scan inputs have different lengths along their scan axes");
    length = shapes[j][axis];
  }
  if (length < 0) c.fail("no scan input");
  return length;
}

int64_t out_axis(const ScanSpec& s, size_t k, size_t row_rank) {
  int64_t r = static_cast<int64_t>(row_rank) + 1;
  return s.out_axes[k] < 0 ? s.out_axes[k] + r : s.out_axes[k];
}

// Iteration t of `length` reads element t of a forward input, length-1-t of a reverse one.
int64_t element(const ScanSpec& s, size_t j, int64_t t, int64_t length) { return s.in_dirs[j] ? length - 1 - t : t; }

std::vector<at::Tensor> run_scan(const OpContext& c, ScanSpec s, std::vector<at::Tensor> states,
                                 const std::vector<at::Tensor>& xs, int64_t length) {
  const Graph& body = attr_graph(c.node, "body");
  std::vector<std::vector<at::Tensor>> rows(s.outputs);
  std::vector<int64_t> stacked(s.outputs, 0);  // elements of each scan output so far
  for (int64_t t = 0; t < length; ++t) {
    std::vector<at::Tensor> in = states;
    for (size_t j = 0; j < xs.size(); ++j) in.push_back(xs[j].select(s.in_axes[j], element(s, j, t, length)));
    std::vector<at::Tensor> out = c.run_subgraph("body", in);
    std::copy(out.begin(), out.begin() + s.states, states.begin());
    for (size_t k = 0; k < s.outputs; ++k) {
      // The stacked output is one tensor: its cap holds while the rows pile up (a body
      // returning a 65536-element row over 65536 steps took 17 GB; found by fuzz_loader).
      const at::Tensor& row = out[s.states + k];
      stacked[k] += row.numel();
      c.check_size(stacked[k], row.scalar_type());
      rows[k].push_back(row);
    }
  }
  for (size_t k = 0; k < s.outputs; ++k) {
    if (s.out_dirs[k]) std::reverse(rows[k].begin(), rows[k].end());  // prepended
    const std::string& name = body.outputs[s.states + k];
    states.push_back(rows[k].empty() ? no_rows(body, name, s.out_axes[k], c.device)
                                     : at::stack(rows[k], out_axis(s, k, rows[k][0].dim())));
  }
  return states;
}

std::vector<std::vector<int64_t>> shapes_of(const std::vector<at::Tensor>& xs) {
  std::vector<std::vector<int64_t>> s;
  for (const at::Tensor& x : xs) s.push_back(x.sizes().vec());
  return s;
}

// Opset 8: each batch entry scanned alone over its own length, scan outputs padded
// with zeros to the longest, everything stacked back along the batch axis.
std::vector<at::Tensor> lower_scan8(const OpContext& c, ScanSpec s) {
  std::vector<at::Tensor> states(c.inputs.begin() + 1, c.inputs.begin() + 1 + s.states);
  std::vector<at::Tensor> xs(c.inputs.begin() + 1 + s.states, c.inputs.end());
  if (xs.empty() || xs[0].dim() < 2) c.fail("opset 8 scan inputs are [batch, sequence, ...]");
  int64_t batch = xs[0].size(0), longest = xs[0].size(1);
  std::vector<int64_t> lens = c.has_input(0) ? c.input_ints(0) : std::vector<int64_t>(batch, longest);
  if (static_cast<int64_t>(lens.size()) != batch) c.fail("sequence_lens must have one entry per batch entry");
  std::vector<std::vector<at::Tensor>> per_output(s.states + s.outputs);
  for (int64_t b = 0; b < batch; ++b) {
    if (lens[b] < 0 || lens[b] > longest) c.fail(fmt::format("sequence length {} is outside [0, {}]", lens[b], longest));
    std::vector<at::Tensor> st, x;
    for (const at::Tensor& t : states) st.push_back(t.select(0, b));
    for (const at::Tensor& t : xs) x.push_back(t.select(0, b));
    std::vector<at::Tensor> out = run_scan(c, s, st, x, lens[b]);
    for (size_t k = 0; k < out.size(); ++k) {
      at::Tensor o = out[k];
      if (k >= s.states && o.size(0) < longest) {
        std::vector<int64_t> pad = o.sizes().vec();
        pad[0] = longest - o.size(0);
        o = at::cat({o, at::zeros(pad, o.options())}, 0);
      }
      per_output[k].push_back(o);
    }
  }
  std::vector<at::Tensor> result;
  for (auto& v : per_output) result.push_back(at::stack(v, 0));
  return result;
}

std::vector<at::Tensor> lower_scan(const OpContext& c) {
  ScanSpec s = scan_spec(c);
  if (c.opset < 9) return lower_scan8(c, s);
  std::vector<at::Tensor> states(c.inputs.begin(), c.inputs.begin() + s.states);
  std::vector<at::Tensor> xs(c.inputs.begin() + s.states, c.inputs.end());
  int64_t length = scan_length(c, s, shapes_of(xs));
  return run_scan(c, s, states, xs, length);
}

// The abstract run: iterations one by one up to kUnrollCap, the rest by a fixpoint
// (each run certain: the length is static).
std::vector<IntervalTensor> scan_bounds(const AbstractContext& a, const ScanSpec& s, std::vector<IntervalTensor> states,
                                        const std::vector<IntervalTensor>& xs, int64_t length) {
  const Graph& body = attr_graph(a.node, "body");
  std::vector<std::vector<IntervalTensor>> rows(s.outputs);
  int64_t t = 0;
  for (; t < length && t < kUnrollCap; ++t) {
    std::vector<IntervalTensor> in = states;
    for (size_t j = 0; j < xs.size(); ++j) in.push_back(select_bounds(xs[j], s.in_axes[j], element(s, j, t, length)));
    std::vector<IntervalTensor> out = a.analyze_subgraph("body", in, true);
    std::copy(out.begin(), out.begin() + s.states, states.begin());
    for (size_t k = 0; k < s.outputs; ++k) rows[k].push_back(out[s.states + k]);
  }
  if (t < length) {
    std::vector<IntervalTensor> elems;
    for (size_t j = 0; j < xs.size(); ++j)
      elems.push_back(s.in_dirs[j] ? hull_along(xs[j], s.in_axes[j], 0, length - t)
                                   : hull_along(xs[j], s.in_axes[j], t, length));
    LoopFixpoint fp = loop_fixpoint(a, states, [&](const std::vector<IntervalTensor>& head) {
      std::vector<IntervalTensor> in = head;
      in.insert(in.end(), elems.begin(), elems.end());
      std::vector<IntervalTensor> out = a.analyze_subgraph("body", in, true);
      return std::make_pair(std::vector<IntervalTensor>(out.begin(), out.begin() + s.states),
                            std::vector<IntervalTensor>(out.begin() + s.states, out.end()));
    });
    states = fp.state;
    for (size_t k = 0; k < s.outputs; ++k) rows[k].insert(rows[k].end(), static_cast<size_t>(length - t), fp.scans[k]);
  }
  for (size_t k = 0; k < s.outputs; ++k) {
    if (s.out_dirs[k]) std::reverse(rows[k].begin(), rows[k].end());
    states.push_back(rows[k].empty()
                         ? IntervalTensor::of_value(no_rows(body, body.outputs[s.states + k], s.out_axes[k], at::kCPU))
                         : stack_bounds(rows[k], out_axis(s, k, rows[k][0].shape.size())));
  }
  return states;
}

// Opset 8 without sequence_lens: each batch entry alone, stacked back. With them the
// lengths are values, which the analysis does not follow.
std::vector<IntervalTensor> scan8_interval(const AbstractContext& a, const ScanSpec& s) {
  if (a.has_input(0)) a.fail("sequence_lens is not modelled: the scan lengths would be values");
  std::vector<IntervalTensor> states(a.inputs.begin() + 1, a.inputs.begin() + 1 + s.states);
  std::vector<IntervalTensor> xs(a.inputs.begin() + 1 + s.states, a.inputs.end());
  if (xs.empty() || xs[0].shape.size() < 2) a.fail("opset 8 scan inputs are [batch, sequence, ...]");
  // Every state and input is split along the batch axis (a rank-0 one was undefined
  // behaviour; found by fuzz_loader under UBSan).
  for (const auto* group : {&states, &xs})
    for (const IntervalTensor& t : *group)
      if (t.shape.empty() || t.shape[0] != xs[0].shape[0])
        a.fail(fmt::format("opset 8 scan states and inputs share the batch axis {}: one has shape {}", xs[0].shape[0],
                           fmt::join(t.shape, "x")));
  std::vector<std::vector<IntervalTensor>> per_output(s.states + s.outputs);
  for (int64_t b = 0; b < xs[0].shape[0]; ++b) {
    std::vector<IntervalTensor> st, x;
    for (const IntervalTensor& t : states) st.push_back(select_bounds(t, 0, b));
    for (const IntervalTensor& t : xs) x.push_back(select_bounds(t, 0, b));
    std::vector<IntervalTensor> out = scan_bounds(a, s, st, x, xs[0].shape[1]);
    for (size_t k = 0; k < out.size(); ++k) per_output[k].push_back(out[k]);
  }
  std::vector<IntervalTensor> result;
  for (auto& v : per_output) result.push_back(stack_bounds(v, 0));
  return result;
}

std::vector<IntervalTensor> scan_interval(const AbstractContext& a) {
  ScanSpec s = scan_spec(a);
  if (a.opset < 9) return scan8_interval(a, s);
  std::vector<IntervalTensor> states(a.inputs.begin(), a.inputs.begin() + s.states);
  std::vector<IntervalTensor> xs(a.inputs.begin() + s.states, a.inputs.end());
  std::vector<std::vector<int64_t>> shapes;
  for (const IntervalTensor& x : xs) shapes.push_back(x.shape);
  int64_t length = scan_length(a, s, shapes);
  return scan_bounds(a, s, states, xs, length);
}

}  // namespace

NANGUARD_REGISTER_OPS({with(OpDef{"Scan", lower_scan}, scan_interval)});

}  // namespace nanguard
