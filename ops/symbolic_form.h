// The linear forms of symbolic bounds (analyzer/symbolic_bounds.cc) as an op's symbolic
// transfer (OpDef::symbolic) sees them: rows of linear upper bounds on the op's output,
// which the transfer rewrites as rows on its inputs. The window, the composition state
// and the concretisation stay in the analyzer, behind BackSubstitution.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "model/graph.h"
#include "ops/interval.h"

namespace nanguard {

// Rows of linear upper bounds on one tensor of the window: row r bounds target
// element (channel o of +t for r < O, of -t for r >= O) at spatial position p by
// sum_{c,k} A[r, c, k] * x[c, stride * p + offset + k] (+ constants kept apart).
struct LinearRows {
  at::Tensor A;  // [R, C, K...]
  std::vector<int64_t> stride, offset;
  // Rows past a zero-padded convolution, kept apart per tap (kernel position): a tap
  // that reads padding contributes 0, so each tap is bounded on its own.
  bool tapped = false;

  int64_t spatial_rank() const { return A.dim() - 2; }
  // The same rows with new coefficients (same window, same taps).
  LinearRows with_coefficients(at::Tensor coefficients) const { return {std::move(coefficients), stride, offset, tapped}; }
};

// The back-substitution a symbolic transfer takes part in: the intervals of the
// window's tensors, its budget, and the terms the transfer leaves behind (constants
// and float32 rounding errors) while it passes rewritten rows on to its inputs.
class BackSubstitution {
 public:
  virtual ~BackSubstitution() = default;

  // The interval of a tensor before the window's target (the target's own too); null
  // when the analysis has none.
  virtual const IntervalTensor* interval(const std::string& tensor) const = 0;
  virtual int64_t opset() const = 0;
  virtual at::ScalarType float_type() const = 0;
  // Spends multiply-adds of the window's budget; false when it would run out.
  virtual bool spend(int64_t multiply_adds) = 0;
  // Hands rows on to an input tensor of the node (back-substituted further later).
  virtual void pass_to(const std::string& tensor, LinearRows rows) = 0;
  // Adds sum_{c,k} A[r,c,k] * v[c] (a known per-channel constant) to the rows' bounds.
  virtual void add_constant(const LinearRows& rows, const at::Tensor& A, const at::Tensor& v) = 0;
  // Adds sum |A| * e[c]: an error term |x - x_real| <= e[c] (float32 rounding).
  virtual void add_error(const LinearRows& rows, const at::Tensor& A, const at::Tensor& e) = 0;
  // `next`, composed from `rows` through a zero-padded convolution, reads `input` where
  // padding adds 0 at the borders: it goes on tap by tap, or the window ends at `input`
  // with its hull joined with 0.
  virtual void cross_zero_padding(const LinearRows& rows, LinearRows& next, const std::string& input) = 0;

  // A float32 sum whose terms' magnitudes pass the float32 limit may overflow part way
  // (the order of accumulation is not known) even when the real total is small: such a
  // node keeps the interval it has (with its overflow finding), never a symbolic bound.
  bool may_overflow(const at::Tensor& magnitudes) const;
  // The float32 rounding of a sum of `fan` products (gamma_n), plus the float64 rounding
  // of composing the rows (sums of `inner` products): both are errors times |A| |W| |x|.
  double rounding_gamma(double fan, int64_t inner) const;
};

// Rewrites rows on the node's (single) output as rows on its inputs through `rows`'
// owner; false when the node cannot take them (attributes, shapes, budget), and then
// the rows are evaluated on the node's output instead.
using SymbolicFn = std::function<bool(BackSubstitution&, const Node&, const LinearRows&)>;

// The unit roundoff of float32, in which the transfers' few-rounding error terms are given.
constexpr double kFloat32UnitRoundoff = 0x1p-24;

// The spatial axes of a coefficient or kernel tensor (every axis past the first two).
std::vector<int64_t> spatial_dims(const at::Tensor& A);

// The per-channel hull [C] of a tensor's bounds (every batch entry and position).
std::pair<at::Tensor, at::Tensor> channel_hull(const IntervalTensor& t);

// Magnitude bound per channel [C] of a tensor (its hull's largest |value|).
at::Tensor channel_magnitude(const IntervalTensor& t);

// A per-channel constant [C] of a tensor broadcast against (N, C, ...) or (N, C):
// constant along every other axis; nothing when it is not.
std::optional<at::Tensor> per_channel(const IntervalTensor& t, int64_t channels, int64_t rank);

// Scales rows channel by channel: A[:, c] *= k[c].
at::Tensor scale_channels(const at::Tensor& A, const at::Tensor& k);

}  // namespace nanguard
