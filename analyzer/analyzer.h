// The abstract interpreter: propagates IntervalTensors through the graph in
// topological order using each op's transfer functions (ops/), checks each op's
// hazards, and continues on the safe state after a finding so that one defect does
// not cascade into spurious ones downstream.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "analyzer/finding.h"
#include "analyzer/norm_bounds.h"
#include "analyzer/partition.h"
#include "model/graph.h"
#include "model/ranges.h"
#include "model/status.h"
#include "ops/interval.h"

namespace nanguard {

enum class WeightMode { kFixed, kFree };

enum class GradientMode { kAuto, kChain, kLocal };

struct AnalyzeOptions {
  RangeMap ranges;  // runtime inputs; missing ones use the defaults below
  WeightMode weights = WeightMode::kFixed;
  // Free weights: every float initializer lies in this range; without it, in its
  // stored [min, max] widened by its own width on each side.
  std::optional<Range> weight_range;
  // Free weights narrowed one by one (the fixer's weight ranges), over weight_range.
  std::map<std::string, Range> weight_ranges;
  at::ScalarType float_type = at::kFloat;
  // Input (and free weight) ranges as float64 tensors (overriding `ranges`): 0-d for one
  // range over the whole tensor, or of the tensor's shape for one per element. When they
  // require grad, every bound the analysis computes is differentiable with respect to
  // them (the fix synthesis optimises clip ranges and pinned weights this way).
  std::unordered_map<std::string, std::pair<at::Tensor, at::Tensor>> range_tensors;
  // Symbolic bounds, on demand (analyzer/symbolic_bounds.h): the operands of a hazard
  // that intervals cannot rule out, and an affine op's output past `symbolic_above` in
  // magnitude, are refined by back-substitution over `symbolic_window` nodes (0: never),
  // within a budget of multiply-adds for the whole analysis (which bounds its time).
  // The second trigger is early on purpose: by the time intervals fail the float32
  // overflow check, the tensors a window would end on are as loose as the failing one,
  // and refinement gained early compounds through the layers after it.
  int symbolic_window = 4;
  double symbolic_above = 1e4;
  int64_t symbolic_budget = 300'000'000;
  // The backward pass. Every op's gradient hazards assume an output gradient of 1
  // (kLocal); kChain also bounds |dL/dt| through the graph from the loss
  // (analyzer/gradient_bounds.h), which covers gradients scaled by the ops after them
  // at a cost in time and, on deep float32 models, in loose findings. kAuto chains
  // where a half type's 65504 makes the local hazards too weak.
  GradientMode gradients = GradientMode::kAuto;
  // A hazard (or overflow) intervals cannot rule out, on the path of a small tensor
  // read along two paths or more: that tensor split into cells and the nodes between
  // analysed again per cell (analyzer/partition.h). element_budget 0: never.
  PartitionOptions partition;
  // Norm bounds (analyzer/norm_bounds.h): an output whose interval passes `norms.above`
  // in magnitude is bounded by its Euclidean norm, chained back through the weights'
  // largest singular values. Deep random conv stacks, whose interval bounds pass
  // float32's limit while real values stay small, are proved finite this way.
  NormOptions norms;
  // Fixed weights past this many elements are kept lazy (IntervalTensor::of_weight):
  // each op that reads one makes its float64 bounds for that read only, and the result
  // keeps them lazy. For callers that read findings and bounds through min()/max()
  // (the analyze command); 0 (the default): every weight has its bounds throughout.
  int64_t lazy_weights_above = 0;
};

// Whether the analysis of `graph` under `options` chains gradient bounds.
bool chains_gradients(const Graph& graph, const AnalyzeOptions& options);

// Default range of an input with none given (must match the random sampler's).
constexpr Range kAnalyzeDefaultFloatRange{-1.0, 1.0};

struct AnalysisResult {
  std::vector<Finding> findings;  // topological order
  std::unordered_map<std::string, IntervalTensor> intervals;  // per tensor
  std::vector<std::string> unsupported;  // op types without abstract semantics
  std::vector<PartitionProof> partitions;  // hazards and bounds proved cell by cell
  NormMap norms;  // a bound on a tensor's Euclidean norm, where one was needed
  // Outputs whose interval a norm bound tightened (deep stacks that intervals alone
  // would report as overflowing), in topological order.
  struct NormTightening {
    std::string node, tensor;
    double norm = 0;    // the bound on the output's Euclidean norm
    double before = 0;  // the interval's largest magnitude before
  };
  std::vector<NormTightening> norm_tightened;
};

Result<AnalysisResult> analyze(const Graph& graph, const AnalyzeOptions& options);

// A tensor's range in the analysis (nullopt when it has no interval, or is empty).
std::optional<Range> range_in(const AnalysisResult& result, const std::string& tensor);
// The range of each input of `node`: [0, 0] for an omitted one, NaN bounds for one
// without an interval (what the facets read as "unknown").
std::vector<Range> operand_ranges(const Node& node, const AnalysisResult& result);

// A weight training may change: a float initializer that is not a folded Constant or
// an exporter's helper tensor ("onnx::*": shapes, axes, clip bounds).
bool is_trainable(const Graph& graph, const std::string& name, const at::Tensor& value);

// The interval every runtime input and (free) weight starts from.
Result<std::unordered_map<std::string, IntervalTensor>> initial_intervals(const Graph& graph,
                                                                          const AnalyzeOptions& options);

}  // namespace nanguard
