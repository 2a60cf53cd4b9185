// Resize / Upsample across opsets (coordinate modes, nearest rounding, crop-and-resize
// extrapolation), GridSample, DepthToSpace and SpaceToDepth.
#include <gtest/gtest.h>

#include "tests/ops/node_runner.h"

namespace nanguard {
namespace {

using testing::run_node;
using testing::set_attr;
using testing::set_string;

const at::Tensor kRow = at::tensor({10.f, 20.f, 30.f, 40.f});

testing::AttrFn modes(std::string mode, std::string coord, std::string nearest = "round_prefer_floor") {
  return [=](onnx::NodeProto& n) {
    set_string(n, "mode", mode);
    set_string(n, "coordinate_transformation_mode", coord);
    set_string(n, "nearest_mode", nearest);
  };
}

at::Tensor resize13(const at::Tensor& x, int64_t size, const testing::AttrFn& attrs, at::Tensor roi = {}) {
  std::vector<std::pair<std::string, at::Tensor>> in{{"x", x}, {roi.defined() ? "roi" : "", roi}, {"", {}}};
  in.emplace_back("sizes", at::tensor({size}, at::kLong));
  auto r = run_node(13, "Resize", in, attrs, 1, 1);
  EXPECT_EQ(r.error, "");
  return r.outputs.empty() ? at::Tensor() : r.outputs[0];
}

TEST(Resize, NearestModesDecideTies) {
  // asymmetric x2: x_original = 0, 0.5, 1, 1.5, ...; the ties split by nearest_mode.
  at::Tensor f = resize13(kRow, 8, modes("nearest", "asymmetric"));
  at::Tensor c = resize13(kRow, 8, modes("nearest", "asymmetric", "round_prefer_ceil"));
  EXPECT_TRUE(at::equal(f, at::tensor({10.f, 10.f, 20.f, 20.f, 30.f, 30.f, 40.f, 40.f})));
  EXPECT_TRUE(at::equal(c, at::tensor({10.f, 20.f, 20.f, 30.f, 30.f, 40.f, 40.f, 40.f})));
}

TEST(Resize, CropAndResizeExtrapolatesOutsideTheInput) {
  // roi [0.5, 1.5] of 3 positions: x_original = 1.5, 3, 4.5 (outside).
  at::Tensor y = resize13(kRow, 3, [](onnx::NodeProto& n) {
    modes("linear", "tf_crop_and_resize")(n);
    set_attr(n, "extrapolation_value", -1.f);
  }, at::tensor({0.5f, 1.5f}));
  EXPECT_TRUE(at::allclose(y, at::tensor({25.f, 40.f, -1.f})));
}

TEST(Resize, LinearIsDifferentiableAndUnknownModesAreReported) {
  at::Tensor x = kRow.clone().requires_grad_(true);
  at::Tensor y = resize13(x, 2, modes("linear", "align_corners"));
  EXPECT_TRUE(at::allclose(y, at::tensor({10.f, 40.f})));
  y.sum().backward();
  EXPECT_TRUE(at::allclose(x.grad(), at::tensor({1.f, 0.f, 0.f, 1.f})));
  auto bad = run_node(13, "Resize", {{"x", kRow}, {"", {}}, {"", {}}, {"sizes", at::tensor({2L})}},
                      modes("area", "half_pixel"), 1, 1);
  EXPECT_NE(bad.error.find("mode 'area' is not supported"), std::string::npos) << bad.error;
}

TEST(Resize, LegacyFormsUseAsymmetricFloorOrCeil) {
  // Resize-10 downsampling by 0.6: x_original = 0, 1.67 -> rounded up to index 2.
  auto r10 = run_node(10, "Resize", {{"x", kRow}, {"s", at::tensor({0.6f})}}, {}, 1, 1);
  ASSERT_EQ(r10.error, "");
  EXPECT_TRUE(at::equal(r10.outputs[0], at::tensor({10.f, 30.f})));
  // Upsample-7 (scales attribute) and -9 (scales input), linear: edge values repeat.
  auto u7 = run_node(7, "Upsample", {{"x", kRow}}, [](onnx::NodeProto& n) {
    testing::set_floats(n, "scales", {2.f});
    set_string(n, "mode", "linear");
  }, 1, 1);
  ASSERT_EQ(u7.error, "");
  EXPECT_TRUE(at::allclose(u7.outputs[0], at::tensor({10.f, 15.f, 20.f, 25.f, 30.f, 35.f, 40.f, 40.f})));
  auto u9 = run_node(9, "Upsample", {{"x", kRow}, {"s", at::tensor({1.5f})}}, {}, 1, 1);
  ASSERT_EQ(u9.error, "");
  EXPECT_TRUE(at::equal(u9.outputs[0], at::tensor({10.f, 10.f, 20.f, 30.f, 30.f, 40.f})));
}

TEST(SpatialMisc, DepthToSpaceModesAndSpaceToDepthRoundTrip) {
  at::Tensor x = at::arange(8, at::kFloat).reshape({1, 8, 1, 1});
  auto bs = [](const std::string& mode) {
    return [mode](onnx::NodeProto& n) {
      set_attr(n, "blocksize", int64_t{2});
      if (!mode.empty()) set_string(n, "mode", mode);
    };
  };
  auto dcr = run_node(13, "DepthToSpace", {{"x", x}}, bs("DCR"), 1, 4);
  auto crd = run_node(13, "DepthToSpace", {{"x", x}}, bs("CRD"), 1, 4);
  ASSERT_EQ(dcr.error, "");
  ASSERT_EQ(crd.error, "");
  // DCR: channel c' of block (i, j) is input channel (i * 2 + j) * 2 + c'; CRD: c' * 4 + i * 2 + j.
  EXPECT_TRUE(at::equal(dcr.outputs[0][0][1].flatten(), at::tensor({1.f, 3.f, 5.f, 7.f})));
  EXPECT_TRUE(at::equal(crd.outputs[0][0][1].flatten(), at::tensor({4.f, 5.f, 6.f, 7.f})));
  auto back = run_node(13, "SpaceToDepth", {{"y", dcr.outputs[0]}}, bs(""), 1, 4);
  ASSERT_EQ(back.error, "");
  EXPECT_TRUE(at::equal(back.outputs[0], x));
}

TEST(SpatialMisc, GridSamplePaddingModes) {
  at::Tensor x = at::tensor({1.f, 2.f, 3.f, 4.f}).reshape({1, 1, 2, 2});
  at::Tensor grid = at::tensor({0.f, 0.f, 3.f, 0.f}).reshape({1, 1, 2, 2});  // centre; far right
  auto run = [&](const std::string& padding) {
    auto r = run_node(16, "GridSample", {{"x", x}, {"g", grid}}, [padding](onnx::NodeProto& n) {
      set_string(n, "padding_mode", padding);
    }, 1, 4);
    EXPECT_EQ(r.error, "");
    return r.outputs[0].flatten();
  };
  EXPECT_TRUE(at::allclose(run("zeros"), at::tensor({2.5f, 0.f})));
  EXPECT_TRUE(at::allclose(run("border"), at::tensor({2.5f, 3.f})));
}

}  // namespace
}  // namespace nanguard
