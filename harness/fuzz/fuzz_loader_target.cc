// fuzz_loader: bytes -> ONNX ModelProto -> the loader (checker, shape inference,
// folding) -> the analyzer -> for small graphs, the executor on in-range inputs.
// Every step must turn bad input into an error value: a crash, an uncaught exception,
// a hang (libFuzzer's -timeout) or an allocation past -malloc_limit_mb is a finding.
// Mutation is structure-aware (proto_mutator.h) so that most inputs still parse.
#include <cstdint>

#include "analyzer/analyzer.h"
#include "harness/fuzz/one_thread.h"
#include "harness/fuzz/proto_mutator.h"
#include "model/onnx_loader.h"
#include "oracle/executor.h"
#include "oracle/input_source.h"

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace {

// Small enough to run for real many times a second, and to stay under libFuzzer's
// memory limit with room for LibTorch.
constexpr int64_t kMaxTensorBytes = int64_t{1} << 24;
constexpr size_t kMaxRunNodes = 64;
constexpr int64_t kMaxRunElements = int64_t{1} << 16;

bool small_enough_to_run(const nanguard::Graph& g) {
  if (g.nodes.size() > kMaxRunNodes) return false;
  for (const auto& [name, type] : g.types) {
    auto n = type.element_count();
    if (!n || *n > kMaxRunElements) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  nanguard::fuzz::run_on_one_thread();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  onnx::ModelProto proto;
  if (!proto.ParseFromArray(data, static_cast<int>(size))) return 0;
  nanguard::LoadOptions lo;
  lo.max_tensor_bytes = kMaxTensorBytes;
  // No folder to read external data from: such references must fail cleanly.
  auto g = nanguard::load_model_proto(std::move(proto), "/nonexistent/fuzz_loader/model.onnx", lo);
  if (!g.ok()) return 0;
  nanguard::AnalyzeOptions ao;
  ao.symbolic_budget = 1'000'000;
  auto a = nanguard::analyze(*g, ao);
  (void)a;
  if (!small_enough_to_run(*g)) return 0;
  nanguard::ExecOptions eo;
  eo.max_tensor_bytes = kMaxTensorBytes;
  auto ex = nanguard::Executor::create(*g, eo);
  if (!ex.ok()) return 0;
  auto feeds = nanguard::random_inputs(*g, {}, 0);
  if (!feeds.ok()) return 0;
  auto r = ex->run(*feeds);
  (void)r;
  return 0;
}

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  static onnx::ModelProto scratch;
  return nanguard::fuzz::mutate_serialized(data, size, max_size, seed, scratch, LLVMFuzzerMutate);
}
