// fuzz_soundness's cases: one ONNX backend node test (a single op of the registry
// with real attributes and shapes) whose float inputs get intervals from the fuzz
// bytes, while integer and boolean inputs, and float inputs that set the output's
// shape, keep the test's own values (indices and axes outside them are not the
// op's domain). The check itself is
// harness/soundness.h: concrete runs on corners, edge values and draws inside the
// intervals must land inside the analyzer's bounds, and NaN/INF must be reported.
#pragma once

#include <string>
#include <vector>

#include "model/graph.h"
#include "model/ranges.h"
#include "model/status.h"

namespace nanguard::fuzz {

// Every <root>/*/model.onnx, sorted.
std::vector<std::string> node_test_models(const std::string& root);

struct SoundnessCase {
  Graph graph;
  std::vector<std::string> float_inputs;  // the runtime inputs that get intervals
  std::vector<int32_t> elem_types;        // per float input
};

// The model with its non-float inputs turned into initializers holding
// test_data_set_0's values.
Result<SoundnessCase> load_soundness_case(const std::string& model_path);

// One interval per float input from the bytes at `at` (9 bytes each: a shape byte,
// then two values): raw float32 bit patterns (any finite magnitude), a symmetric
// power-of-two box, or a point. Each end is rounded to the nearest value of the
// input's type (float16 rounds 1e-41 to 0 and 1e28 to INF before the op sees them;
// with representable ends, every draw rounded to the type stays inside).
RangeMap ranges_from_bytes(const SoundnessCase& c, const uint8_t* data, size_t size, size_t at);

}  // namespace nanguard::fuzz
