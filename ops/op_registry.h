// The registry of op semantics. Each ops/<family>.cc file defines, per ONNX op, its
// facets (today the LibTorch lowering; the abstract transfer functions and hazard
// conditions join the same OpDef) and registers them from that file with
// NANGUARD_REGISTER_OPS, so adding an op never touches a second table.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "model/graph.h"
#include "ops/abstract_context.h"
#include "ops/hazard.h"
#include "ops/op_context.h"

namespace nanguard {

// Computes the node's outputs from its inputs with ATen ops, so that the result is
// what the ONNX spec defines and autograd can differentiate through it.
using LowerFn = std::function<std::vector<at::Tensor>(const OpContext&)>;

// Sound interval bounds of the node's outputs given its input intervals, in float32
// (results rounded outward). Shapes of outputs must be exact.
using IntervalFn = std::function<std::vector<IntervalTensor>(const AbstractContext&)>;
// Which hazards are possible for these input intervals (empty: proved safe).
using HazardFn = std::function<std::vector<HazardReport>(const AbstractContext&)>;

// How the analyzer may derive an interval transfer from the lowering when the op
// gives none: kIncreasing/kDecreasing elementwise functions of input 0 are applied
// to the bounds; kDataMovement ops (Reshape, Transpose, Slice, Concat, Gather with
// known indices...) only move values, so they are applied to lo and to hi.
enum class Monotone { kNone, kIncreasing, kDecreasing, kDataMovement };

struct OpDef {
  std::string op_type;
  LowerFn lower;
  std::string domain = "";  // default ONNX domain
  IntervalFn interval = nullptr;
  HazardFn hazards = nullptr;
  Monotone monotone = Monotone::kNone;
  int ulps = 0;  // float32 rounding error of the result, for derived transfers
  // Random ops: their outputs are never constants, even when every input is.
  bool nondeterministic = false;
  // Output shapes that depend on input values, not only on input shapes (NonZero,
  // Unique, Range, Compress): without exact inputs the analysis cannot follow them.
  bool value_dependent_shape = false;
};

// Attaches the abstract facets to an op's definition: OpDef{...} with its interval
// transfer and (optionally) its hazard conditions.
inline OpDef with(OpDef d, IntervalFn interval, HazardFn hazards = nullptr) {
  d.interval = std::move(interval);
  d.hazards = std::move(hazards);
  return d;
}

// Marks an op whose output shape depends on input values (NonZero, Range...).
inline OpDef value_dependent_shape(OpDef d) {
  d.value_dependent_shape = true;
  return d;
}

class OpRegistry {
 public:
  static OpRegistry& instance();
  void add(OpDef def);  // aborts on a duplicate: two homes for one op is a bug
  const OpDef* find(const std::string& op_type, const std::string& domain = "") const;
  std::vector<std::string> op_types() const;  // sorted

 private:
  std::vector<OpDef> defs_;
};

struct OpRegistrar {
  explicit OpRegistrar(std::vector<OpDef> defs);
};

// The op types of `graph` that the registry does not know, each once, in order of
// first appearance (with the domain prefixed when not the default one).
std::vector<std::string> unsupported_op_types(const Graph& graph);

#define NANGUARD_CONCAT_INNER(a, b) a##b
#define NANGUARD_CONCAT(a, b) NANGUARD_CONCAT_INNER(a, b)
#define NANGUARD_REGISTER_OPS(...) \
  static const ::nanguard::OpRegistrar NANGUARD_CONCAT(nanguard_registrar_, __LINE__)(__VA_ARGS__)

}  // namespace nanguard
