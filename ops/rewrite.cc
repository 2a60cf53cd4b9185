#include "ops/rewrite.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include <ATen/ATen.h>

#include "ops/op_registry.h"
#include "ops/tensor_proto.h"

namespace nanguard {
namespace {

std::vector<Rewrite>& registry() {
  static std::vector<Rewrite> rewrites;
  return rewrites;
}

}  // namespace

const Rewrite* find_rewrite(const std::string& name) {
  for (const Rewrite& r : registry())
    if (r.name == name) return &r;
  return nullptr;
}

std::vector<std::string> rewrite_names() {
  std::vector<std::string> names;
  for (const Rewrite& r : registry()) names.push_back(r.name);
  std::sort(names.begin(), names.end());
  return names;
}

RewriteRegistrar::RewriteRegistrar(std::vector<Rewrite> rewrites) {
  for (Rewrite& r : rewrites) {
    if (find_rewrite(r.name)) {
      std::fprintf(stderr, "nanguard: internal error: rewrite %s registered twice\n", r.name.c_str());
      std::abort();
    }
    registry().push_back(std::move(r));
  }
}

const Node* producer_through_identities(const RewriteContext& ctx, const std::string& tensor) {
  const Node* p = ctx.graph.producer(tensor);
  for (int hops = 0; p && hops < 8; ++hops) {
    bool identity = p->op_type == "Identity";
    if (p->op_type == "Relu" && !p->inputs.empty()) {
      auto r = ctx.range_of(p->inputs[0]);
      identity = r && r->lo >= 0;  // relu(x) == x for x >= 0
    }
    if (!identity || p->inputs.empty()) return p;
    p = ctx.graph.producer(p->inputs[0]);
  }
  return p;
}

std::optional<at::Tensor> constant_value(const Graph& graph, const std::string& tensor) {
  auto it = graph.initializers.find(tensor);
  if (it == graph.initializers.end()) return std::nullopt;
  try {
    return tensor_from_proto(it->second);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

bool constant_equal(const Graph& graph, const std::string& tensor, double value) {
  auto t = constant_value(graph, tensor);
  return t && t->numel() > 0 && (t->to(at::kDouble) == value).all().item<bool>();
}

}  // namespace nanguard
