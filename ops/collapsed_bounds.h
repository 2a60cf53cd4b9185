// Fast paths for spatial ops on bounds that are one cell per channel (DEBAR's default
// partition): when every spatial position (and sample) of the input shares its
// channel's interval, so does every output position, up to windows that touch the
// padding. Conv then costs O(|W|) instead of two float64 convolutions over the
// feature map, which is what keeps a ResNet-50 analysis cheap. Used by ops/conv.cc
// and ops/pool.cc; each caller falls back to its full path when this does not apply.
#pragma once

#include <optional>
#include <vector>

#include <ATen/ATen.h>

#include "ops/abstract_context.h"

namespace nanguard {

// True when the bounds have one cell over the batch and every spatial axis.
inline bool spatially_collapsed(const IntervalTensor& x) {
  if (x.exact() || x.lo.dim() < 3 || x.lo.size(0) != 1 || x.hi.size(0) != 1) return false;
  for (int64_t d = 2; d < x.lo.dim(); ++d)
    if (x.lo.size(d) != 1 || x.hi.size(d) != 1) return false;
  return true;
}

// The output shape shape inference recorded, when fully known.
inline std::optional<std::vector<int64_t>> inferred_shape(const AbstractContext& a, size_t output) {
  if (output >= a.node.outputs.size()) return std::nullopt;
  const TensorType* t = a.graph.type_of(a.node.outputs[output]);
  if (!t || !t->dims || !t->element_count()) return std::nullopt;
  return *t->dims;
}

// Whether a window may read padding: explicit non-zero pads or auto_pad SAME_*.
inline bool may_pad(const Node& node) {
  std::string auto_pad = attr_string(node, "auto_pad", "NOTSET");
  if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") return true;
  if (auto_pad == "VALID") return false;
  for (int64_t p : attr_ints_opt(node, "pads").value_or(std::vector<int64_t>{}))
    if (p != 0) return true;
  return false;
}

// Per-channel bounds [C] of a collapsed input (a single cell broadcasts to C).
inline std::pair<at::Tensor, at::Tensor> channel_bounds(const IntervalTensor& x, double limit) {
  int64_t c = x.shape[1];
  at::Tensor lo = x.lo.clamp(-limit, limit).reshape({-1}).expand({c}).contiguous();
  at::Tensor hi = x.hi.clamp(-limit, limit).reshape({-1}).expand({c}).contiguous();
  return {lo, hi};
}

// The cell shape [1, C, 1, ...] of a collapsed tensor of `rank`.
inline std::vector<int64_t> channel_cell(int64_t channels, size_t rank) {
  std::vector<int64_t> cell(rank, 1);
  cell[1] = channels;
  return cell;
}

}  // namespace nanguard
