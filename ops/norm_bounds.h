// Norm bounds: an upper bound on the Euclidean norm of a tensor's computed values (all
// elements, float rounding included), chained through the ops that have a norm facet
// (OpDef::norm). Every element lies within [-N, N], so where intervals lose the
// cancellation between neurons (a deep random conv stack, whose interval bounds grow
// by the row sums of |W| per layer while real values stay small) a bound by operator
// norms (the largest singular value of each weight) can still prove no overflow.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

#include <ATen/ATen.h>

#include "ops/abstract_context.h"
#include "ops/interval.h"

namespace nanguard {

constexpr double kNoNormBound = std::numeric_limits<double>::infinity();

// What a norm facet sees: the node's input intervals (exact weights carry their
// values), a bound on each input's norm and the output intervals the transfer gave.
struct NormContext {
  const AbstractContext& a;
  std::vector<double> inputs;  // per input; kNoNormBound when none is known
  const std::vector<IntervalTensor>& outputs;

  double input(size_t i) const { return i < inputs.size() ? inputs[i] : kNoNormBound; }
};

// A bound on the norm of output 0; kNoNormBound when the op cannot give one.
using NormFn = std::function<double(const NormContext&)>;

// The norm of an interval tensor's values: its own norm when exact, else the norm of
// its largest magnitudes (each cell counted as often as it broadcasts), outward.
double norm_of(const IntervalTensor& t);

// Upper bounds on the largest singular value of each matrix M[b] of a [B, r, c]
// tensor, by Gram iteration (||G^(2^T)||_F^(1/2^T) with G = M M^T) in float32 with the
// rounding of every product included; kNoNormBound where the matrices are not finite,
// have more than 2^17 rows and columns both, or would cost more than `max_multiply_adds`.
std::vector<double> spectral_norm_bounds(const at::Tensor& M, double max_multiply_adds = 4e9);
// The largest over the batch (0 for an empty batch).
double max_spectral_norm_bound(const at::Tensor& M, double max_multiply_adds = 4e9);

// A bound on || |M| ||_2 (entries' magnitudes), sqrt(max column sum * max row sum):
// the scale of a product's rounding errors and of its partial sums.
double magnitude_norm_bound(const at::Tensor& M);

// The norm of `v` broadcast to `numel` elements (each element repeated equally).
double broadcast_norm(const at::Tensor& v, int64_t numel);

// How many windows (kernel k, stride s, dilation d along one axis) one input position
// can fall in, at most: taps j with j*d congruent mod s, ceil(k / (s / gcd(s, d))).
int64_t window_overlap(int64_t kernel, int64_t stride, int64_t dilation);

// The norm facet of ops that only move (never repeat) their input's values: Reshape,
// Transpose, Identity...
double norm_preserved(const NormContext& c);

}  // namespace nanguard
