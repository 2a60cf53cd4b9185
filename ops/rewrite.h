// Rewrites: meaning-preserving replacements that remove a hazard while keeping the
// whole input range (Log(Softmax) -> LogSoftmax, x / sqrt(v) -> x / sqrt(v + eps)).
// Each lives in ops/ beside the hazard it removes, is named by that hazard's facet
// (HazardFacet::rewrites), and registers itself in its file; the fixer applies them
// by name and lets the analyzer judge the result.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "model/graph.h"
#include "model/patch.h"
#include "model/ranges.h"

namespace nanguard {

struct RewriteContext {
  const Graph& graph;   // the model being fixed, as analysed
  const Node& node;     // the faulty node
  // The analysis' range of a tensor (nullopt when it has none).
  std::function<std::optional<Range>(const std::string&)> range_of;
  ModelPatch& patch;    // edited in place when the rewrite applies
  // Parametric rewrites (an eps) try their options in turn: 0 first, the gentlest.
  int attempt = 0;
};

struct RewriteApplied {
  std::string description;  // the graph change, e.g. "Log(Softmax(z)) -> LogSoftmax(z)"
  std::string hint;         // the source-level change for PyTorch users
};

// Applies the rewrite at ctx.node, or returns nullopt without touching the patch
// when the pattern does not match there (or `attempt` is past its options).
using RewriteFn = std::function<std::optional<RewriteApplied>(RewriteContext&)>;

struct Rewrite {
  std::string name;
  RewriteFn apply;
};

const Rewrite* find_rewrite(const std::string& name);
std::vector<std::string> rewrite_names();  // sorted

struct RewriteRegistrar {
  explicit RewriteRegistrar(std::vector<Rewrite> rewrites);
};

#ifndef NANGUARD_CONCAT
#define NANGUARD_CONCAT_INNER(a, b) a##b
#define NANGUARD_CONCAT(a, b) NANGUARD_CONCAT_INNER(a, b)
#endif
#define NANGUARD_REGISTER_REWRITES(...) \
  static const ::nanguard::RewriteRegistrar NANGUARD_CONCAT(nanguard_rewrites_, __LINE__)(__VA_ARGS__)

// Pattern helpers shared by the rewrite files.
// The node producing `tensor`, looking through identities the analysis proves
// (Identity, and Relu of a tensor already >= 0); null for inputs and initializers.
const Node* producer_through_identities(const RewriteContext& ctx, const std::string& tensor);
// The value of initializer `tensor`; nullopt when it is not one (or cannot be read).
std::optional<at::Tensor> constant_value(const Graph& graph, const std::string& tensor);
// True when `tensor` is an initializer every element of which equals `value`.
bool constant_equal(const Graph& graph, const std::string& tensor, double value);

}  // namespace nanguard
