// The registry of op semantics. Each ops/<family>.cc file defines, per ONNX op, its
// facets (the LibTorch lowering, the interval and symbolic transfers, the hazard
// conditions, the roles of its inputs) and registers them from that file with
// NANGUARD_REGISTER_OPS, so adding an op never touches a second table.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "model/graph.h"
#include "ops/abstract_context.h"
#include "ops/hazard.h"
#include "ops/norm_bounds.h"
#include "ops/op_context.h"
#include "ops/symbolic_form.h"

namespace z3 {
class expr;
}

namespace nanguard {

// Computes the node's outputs from its inputs with ATen ops, so that the result is
// what the ONNX spec defines and autograd can differentiate through it.
using LowerFn = std::function<std::vector<at::Tensor>(const OpContext&)>;
// The same for ops whose inputs or outputs may be sequences or optionals (If, Loop,
// Identity, the Sequence* and Optional* ops): it reads OpContext::values.
using ValueLowerFn = std::function<std::vector<OpValue>(const OpContext&)>;

// Sound interval bounds of the node's outputs given its input intervals, in float32
// (results rounded outward). Shapes of outputs must be exact.
using IntervalFn = std::function<std::vector<IntervalTensor>(const AbstractContext&)>;
// Which hazards are possible for these input intervals (empty: proved safe).
using HazardFn = std::function<std::vector<HazardReport>(const AbstractContext&)>;

// How the analyzer may derive an interval transfer from the lowering when the op
// gives none: kIncreasing/kDecreasing elementwise functions of input 0 are applied
// to the bounds; kDataMovement ops (Reshape, Transpose, Slice, Concat, Gather with
// known indices...) only move values, so they are applied to lo and to hi.
// The op's float32 semantics in Z3's floating-point theory, exactly (IEEE, correctly
// rounded), over one expression per node input: what the unit solver hands to Z3.
using Z3EncodingFn = std::function<z3::expr(const std::vector<z3::expr>& operands)>;

enum class Monotone { kNone, kIncreasing, kDecreasing, kDataMovement };

// What a free weight (`--weights free`) fed to an input may become while keeping its
// meaning: any value in its range, only >= 0 (a variance), or nothing but its stored
// value (a structural parameter such as Resize scales, which shapes the computation).
enum class InputRole { kValue, kNonnegative, kStructural };

// The operands of a quotient (Div: x / y, Reciprocal: 1 / x), so that the fixer can
// keep a divisor whose range crosses 0 away from 0 with its sign moved to the numerator.
struct QuotientOperands {
  int numerator = -1;  // -1: the numerator is 1
  int divisor = 0;
};

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
  // Every hazard `hazards` can report, with its facets (ops/hazard.h).
  std::vector<HazardFacet> facets;
  // Null when the op is outside Z3's floating-point theory (thresholds stand in).
  Z3EncodingFn z3_encoding = nullptr;
  // Operands broadcast elementwise into one output (Add, Div, Pow...): one output
  // position ties one element of each operand.
  bool elementwise_broadcast = false;
  // Its linear transfer or relaxation for symbolic bounds (ops/symbolic_form.h); null
  // when they cannot cross the op: their window stops at its output.
  SymbolicFn symbolic = nullptr;
  // The op composes neurons linearly (Conv, Gemm, Add...): the analyzer refines its
  // outputs symbolically where they grow large or feed a hazard. Needs `symbolic`.
  bool affine = false;
  // A bound on its output's Euclidean norm from its inputs' (ops/norm_bounds.h); null
  // when the op gives none, and then norm bounds stop at its output.
  NormFn norm = nullptr;
  // Its transfer is exact on +-inf cells, as extended reals (a -inf mask fill carried
  // through Add, Where, Max or Softmax); an inf - inf it meets gives NaN bounds, which
  // the analyzer reports. Other ops (and monotone ones, whose transfers evaluate the op
  // at the ends) meeting an infinite operand get an `infinite-operand` finding.
  bool infinities = false;
  // Per input, in order; inputs past the list are kValue.
  std::vector<InputRole> input_roles;
  std::optional<QuotientOperands> quotient;
  // Set for ops that take or return sequences or optionals; the executor then calls
  // it instead of `lower` (which stays for the analyzer's exact evaluation).
  ValueLowerFn lower_values = nullptr;

  const HazardFacet* facet(const std::string& hazard) const;
  InputRole input_role(size_t input) const { return input < input_roles.size() ? input_roles[input] : InputRole::kValue; }
};

// Attaches the abstract facets to an op's definition: OpDef{...} with its interval
// transfer and (optionally) its hazard conditions.
inline OpDef with(OpDef d, IntervalFn interval, HazardFn hazards = nullptr) {
  d.interval = std::move(interval);
  d.hazards = std::move(hazards);
  return d;
}

// Declares the hazards an op can report, with their facets.
inline OpDef with_facets(OpDef d, std::vector<HazardFacet> facets) {
  d.facets = std::move(facets);
  return d;
}

// Ops inside Z3's theory: their exact float32 encoding.
inline OpDef with_z3(OpDef d, Z3EncodingFn encoding) {
  d.z3_encoding = std::move(encoding);
  return d;
}

// Marks an op whose operands broadcast elementwise into its output.
inline OpDef broadcasting(OpDef d) {
  d.elementwise_broadcast = true;
  return d;
}

// Marks an op whose output shape depends on input values (NonZero, Range...).
inline OpDef value_dependent_shape(OpDef d) {
  d.value_dependent_shape = true;
  return d;
}

// Ops that symbolic bounds cross: their linear transfer or relaxation.
inline OpDef with_symbolic(OpDef d, SymbolicFn transfer) {
  d.symbolic = std::move(transfer);
  return d;
}

// Marks an op that composes neurons linearly (its outputs are refined symbolically).
inline OpDef takes_infinities(OpDef d) {
  d.infinities = true;
  return d;
}

// Ops that norm bounds cross: their norm transfer.
inline OpDef with_norm(OpDef d, NormFn transfer) {
  d.norm = std::move(transfer);
  return d;
}

inline OpDef affine_op(OpDef d) {
  d.affine = true;
  return d;
}

// The roles of the op's inputs for free weights (kValue for any not listed).
inline OpDef with_input_roles(OpDef d, std::vector<InputRole> roles) {
  d.input_roles = std::move(roles);
  return d;
}

// Marks a quotient op with its numerator (-1: 1) and divisor inputs.
inline OpDef with_quotient(OpDef d, int numerator, int divisor) {
  d.quotient = QuotientOperands{numerator, divisor};
  return d;
}

// The tensor lowering of a value lowering, for callers that hold tensors only (the
// analyzer's exact evaluation): inputs wrapped as values, subgraphs run on tensors; a
// non-tensor output throws ModelError.
LowerFn tensors_via_values(ValueLowerFn lower);

// Ops whose inputs or outputs may be sequences or optionals: their value lowering.
inline OpDef with_values(OpDef d, ValueLowerFn lower) {
  d.lower_values = std::move(lower);
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

// The facet of `hazard` as reported by `op_type`: the op's own, else one of the
// hazards the analyzer reports for any op ("overflow", "unsupported"); null when
// neither knows it.
const HazardFacet* find_facet(const std::string& op_type, const std::string& domain, const std::string& hazard);

// The op types of `graph` that the registry does not know, each once, in order of
// first appearance (with the domain prefixed when not the default one).
std::vector<std::string> unsupported_op_types(const Graph& graph);

#define NANGUARD_CONCAT_INNER(a, b) a##b
#define NANGUARD_CONCAT(a, b) NANGUARD_CONCAT_INNER(a, b)
#define NANGUARD_REGISTER_OPS(...) \
  static const ::nanguard::OpRegistrar NANGUARD_CONCAT(nanguard_registrar_, __LINE__)(__VA_ARGS__)

}  // namespace nanguard
