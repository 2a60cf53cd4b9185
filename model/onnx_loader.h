// Loads an ONNX file into the graph IR: validates it (libonnx checker), binds symbolic
// dimensions, reads external data that stays inside the model's folder, infers shapes,
// folds Constant nodes into initializers and sorts nodes topologically.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "model/graph.h"
#include "model/precision.h"
#include "model/status.h"

namespace nanguard {

constexpr int64_t kMinOpset = 7;
constexpr int64_t kMaxOpset = 17;  // the newest opset libonnx 1.12 knows
// Documented cap on any one tensor (initializer, input or inferred intermediate).
constexpr int64_t kDefaultMaxTensorBytes = int64_t{1} << 30;

struct LoadOptions {
  std::map<std::string, int64_t> dims;  // symbolic dimension -> value (unbound: 1)
  int64_t max_tensor_bytes = kDefaultMaxTensorBytes;
  // The precision the model runs in (model/precision.h): a float32 model is rewritten
  // as it runs after model.half() or under autocast before anything else sees it.
  Precision precision = Precision::kNative;
};

Result<Graph> load_model(const std::string& path, const LoadOptions& options = {});
// Sorts `m`'s nodes topologically and rewrites it as it runs in `p`: what the loader
// does first, for callers that edit the proto itself (fixes, reproducers).
Status apply_precision(onnx::ModelProto& m, Precision p, const std::string& path);
// A whole file's bytes, or one clear error (missing, a directory, unreadable).
Result<std::string> read_file(const std::string& path);
// For models built in memory (tests); `path` locates external data.
Result<Graph> load_model_proto(onnx::ModelProto model, const std::string& path,
                               const LoadOptions& options = {});

}  // namespace nanguard
