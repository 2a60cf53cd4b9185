// Reproducers: one directory per witnessed finding, in the ONNX backend-test layout
// (model.onnx with the witness's weights baked in and the faulty node's output added
// as a graph output; test_data_set_0/input_N.pb and output_N.pb; README.md), plus the
// finding in the model's metadata_props so that `nanguard replay` needs nothing else.
#pragma once

#include <string>
#include <vector>

#include "analyzer/finding.h"
#include "model/graph.h"
#include "model/status.h"
#include "oracle/executor.h"
#include "solver/trigger.h"

namespace nanguard {

struct ReproducerSpec {
  Finding finding;
  int operand = 0;                   // the faulty input (gradient findings)
  TensorMap feeds;                   // runtime inputs and free weights, as run
  std::vector<std::string> devices;  // where it reproduced
  std::string strategy;
  std::string model_path;            // the original model
  std::string note;                  // an extra README paragraph (training-time witnesses)
};

// The spec of a triggered outcome's reproducer: its point as feeds, float32 where the
// graph declares float32 (the search keeps float64 copies).
ReproducerSpec reproducer_spec(const Graph& graph, const TriggerOutcome& outcome);

// A reproducer's folder name: "NN-node-hazard", the node's name made safe for paths.
std::string reproducer_dir_name(size_t index, const Finding& finding);

// Writes `dir` whole or not at all (built beside it, then renamed into place).
Status write_reproducer(const Graph& graph, const ReproducerSpec& spec, const std::string& dir);

struct Reproducer {
  std::string model_path;  // dir/model.onnx
  Finding finding;         // node, op, kind, hazard
  int operand = 0;
  TensorMap inputs;        // test_data_set_0, by graph input name
};

Result<Reproducer> read_reproducer(const std::string& dir, const Graph& graph);
// The finding stored in a reproducer's model.onnx (before loading it as a Graph).
Result<Reproducer> read_reproducer_header(const std::string& dir);

}  // namespace nanguard
