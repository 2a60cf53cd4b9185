// A float32 model as it runs in half precision, rewritten as an ONNX model of that
// precision, so that the analysis, the searches and the executor all see the model
// the user runs:
//   fp16, bf16       model.half() / model.to(torch.bfloat16): every float32 weight,
//                    input, output, Cast and Constant in the type;
//   autocast-fp16,   torch.autocast: matrix products and convolutions (MatMul, Gemm,
//   autocast-bf16    Conv, ConvTranspose, PRelu, the RNNs) in the type, the ops autocast
//                    runs in float32 (exp, log, pow, softmax, log_softmax, norms,
//                    reductions by sum, losses, ...) in float32, every other op in the
//                    widest float type among its activations. Weights, inputs and
//                    outputs stay float32; Cast nodes named "nanguard_autocast/..." do
//                    the conversions.
// Autocast is modelled on the ONNX ops: an exporter's decomposition of a listed op
// (a LayerNorm as ReduceMean/Sub/Div) runs as its parts would.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <onnx/onnx_pb.h>

#include "model/status.h"

namespace nanguard {

enum class Precision { kNative, kFloat16, kBFloat16, kAutocastFloat16, kAutocastBFloat16 };

// "native", "fp16", "bf16", "autocast-fp16", "autocast-bf16".
std::optional<Precision> parse_precision(const std::string& s);
const char* to_string(Precision p);

// The bits of a float32 rounded to nearest even as IEEE binary16 / bfloat16.
uint16_t float16_bits(float f);
uint16_t bfloat16_bits(float f);

// A FLOAT tensor converted in place to `elem` (FLOAT16 or BFLOAT16); with
// `keep_max_finite`, +-FLT_MAX (an exporter's "no bound") becomes the type's largest
// finite value instead of INF.
void convert_float_tensor(onnx::TensorProto& t, int32_t elem, bool keep_max_finite = false);

// Rewrites `m` (nodes in topological order) as it runs in `p`; kNative leaves it.
Status convert_precision(onnx::ModelProto& m, Precision p, const std::string& path);

}  // namespace nanguard
