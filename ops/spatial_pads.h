// Shared by Conv, ConvTranspose and the pools (ops/conv.cc, ops/pool.cc): the per-axis
// attributes of a sliding window and ONNX's padding rules (explicit `pads` or auto_pad).
// ATen only pads symmetrically, so callers pad explicitly with these amounts.
#pragma once

#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <fmt/core.h>

#include "ops/op_context.h"

namespace nanguard {

struct SpatialPads {
  std::vector<int64_t> begin, end;
  bool symmetric() const { return begin == end; }
  bool zero() const {
    for (size_t i = 0; i < begin.size(); ++i)
      if (begin[i] != 0 || end[i] != 0) return false;
    return true;
  }
};

// An ints attribute with one value per spatial axis, or `fallback` on every axis.
inline std::vector<int64_t> spatial_attr(const OpContext& ctx, const std::string& name, size_t n,
                                         int64_t fallback) {
  auto v = attr_ints_opt(ctx.node, name);
  if (!v) return std::vector<int64_t>(n, fallback);
  if (v->size() != n) ctx.fail(fmt::format("attribute '{}' has {} values for {} spatial axes", name, v->size(), n));
  return *v;
}

// The padding of each spatial axis of an input of spatial size `in` under a window of
// (dilated) extent `window` and `strides`. SAME_* pads so that out = ceil(in / stride),
// the odd element at the end (SAME_UPPER) or at the beginning (SAME_LOWER).
inline SpatialPads spatial_pads(const OpContext& ctx, const std::vector<int64_t>& in,
                                const std::vector<int64_t>& window, const std::vector<int64_t>& strides) {
  size_t n = in.size();
  SpatialPads p{std::vector<int64_t>(n, 0), std::vector<int64_t>(n, 0)};
  std::string auto_pad = attr_string(ctx.node, "auto_pad", "NOTSET");
  if (auto_pad == "NOTSET") {
    std::vector<int64_t> pads = spatial_attr(ctx, "pads", 2 * n, 0);
    for (size_t i = 0; i < n; ++i) {
      p.begin[i] = pads[i];
      p.end[i] = pads[n + i];
      if (p.begin[i] < 0 || p.end[i] < 0) ctx.fail("negative pads are not supported");
    }
    return p;
  }
  if (auto_pad == "VALID") return p;
  if (auto_pad != "SAME_UPPER" && auto_pad != "SAME_LOWER") ctx.fail("auto_pad '" + auto_pad + "' is not supported");
  for (size_t i = 0; i < n; ++i) {
    int64_t out = (in[i] + strides[i] - 1) / strides[i];
    int64_t total = std::max<int64_t>(0, (out - 1) * strides[i] + window[i] - in[i]);
    bool upper = auto_pad == "SAME_UPPER";
    p.begin[i] = upper ? total / 2 : total - total / 2;
    p.end[i] = total - p.begin[i];
  }
  return p;
}

// Pads the trailing spatial axes of `x` (N, C, spatial...) with `value`; negative
// amounts crop.
inline at::Tensor pad_spatial(const at::Tensor& x, const SpatialPads& p, double value) {
  if (p.zero()) return x;
  std::vector<int64_t> pad;  // constant_pad_nd lists the last axis first
  for (size_t i = p.begin.size(); i-- > 0;) {
    pad.push_back(p.begin[i]);
    pad.push_back(p.end[i]);
  }
  return at::constant_pad_nd(x, pad, value);
}

}  // namespace nanguard
