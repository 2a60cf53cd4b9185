// Resize / Upsample across opsets (coordinate modes, nearest rounding, crop-and-resize
// extrapolation), GridSample, DepthToSpace and SpaceToDepth.
#include <gtest/gtest.h>

#include "tests/ops/op_test_util.h"

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


// ---- abstract semantics -------------------------------------------------------

using testing::analyze_built;
using testing::expect_sound;
using testing::ModelBuilder;
using testing::ranges_of;

TEST(SequenceMiscAbstract, ResizeSoundBySampling) {
  int64_t checked = 0;
  for (auto [lo, hi] : std::vector<std::pair<double, double>>{{-3, 3}, {0, 1}, {0.999, 1.001}, {-1e20, 1e20}}) {
    std::string box = std::to_string(lo) + "," + std::to_string(hi);
    auto opt = ranges_of({{"x", {lo, hi}}});
    for (const char* mode : {"nearest", "linear", "cubic"}) {
      for (const char* coord : {"half_pixel", "align_corners", "tf_crop_and_resize"}) {
        ModelBuilder b(13);
        b.input("x", {1, 2, 3, 4}).output("y", {1, 2, 5, 7});
        b.initializer("roi", at::tensor({0.0f, 0.0f, -0.2f, 0.1f, 1.0f, 1.0f, 1.1f, 0.9f}));
        b.initializer("scales", at::tensor({1.0f, 1.0f, 1.7f, 1.8f}));
        auto& n = b.node("Resize", {"x", "roi", "scales"}, {"y"}, "n");
        set_string(n, "mode", mode);
        set_string(n, "coordinate_transformation_mode", coord);
        if (std::string(coord) == "tf_crop_and_resize") set_attr(n, "extrapolation_value", 7.0f);
        checked += expect_sound(b, opt, std::string("Resize ") + mode + " " + coord + " " + box, nullptr, 20);
      }
    }
    ModelBuilder u(9);
    u.input("x", {1, 2, 3, 4}).initializer("scales", at::tensor({1.0f, 1.0f, 2.0f, 2.0f})).output("y", {1, 2, 6, 8});
    set_string(u.node("Upsample", {"x", "scales"}, {"y"}, "n"), "mode", "linear");
    checked += expect_sound(u, opt, "Upsample " + box, nullptr, 20);
    for (const char* op : {"DepthToSpace", "SpaceToDepth"}) {
      ModelBuilder d(13);
      bool d2s = std::string(op) == "DepthToSpace";
      d.input("x", {1, 4, 2, 4}).output("y", d2s ? std::vector<int64_t>{1, 1, 4, 8} : std::vector<int64_t>{1, 16, 1, 2});
      set_attr(d.node(op, {"x"}, {"y"}, "n"), "blocksize", int64_t{2});
      checked += expect_sound(d, opt, std::string(op) + " " + box, nullptr, 20);
    }
  }
  EXPECT_GT(checked, 1000);
}

TEST(SequenceMiscAbstract, GridSampleSoundBySampling) {
  at::manual_seed(9);
  at::Tensor grid = at::rand({1, 3, 4, 2}) * 2.4 - 1.2;
  int64_t checked = 0;
  for (auto [lo, hi] : std::vector<std::pair<double, double>>{{-3, 3}, {0.5, 1}, {0.999, 1.001}, {-1e20, 1e20}}) {
    std::string box = std::to_string(lo) + "," + std::to_string(hi);
    for (bool exact_grid : {true, false}) {
      for (const char* mode : {"bilinear", "nearest", "bicubic"}) {
        for (const char* pad : {"zeros", "border", "reflection"}) {
          ModelBuilder b(16);
          b.input("x", {1, 2, 4, 5}).output("y", {1, 2, 3, 4});
          if (exact_grid) b.initializer("g", grid);
          else b.input("g", {1, 3, 4, 2});
          auto& n = b.node("GridSample", {"x", "g"}, {"y"}, "n");
          set_string(n, "mode", mode);
          set_string(n, "padding_mode", pad);
          auto opt = ranges_of({{"x", {lo, hi}}, {"g", {-1.2, 1.2}}});
          checked += expect_sound(b, opt, std::string("GridSample ") + mode + " " + pad + " " + box, nullptr, 20);
        }
      }
    }
  }
  EXPECT_GT(checked, 1000);
}

// Resize (linear) -> Log: proved on [1, 2], flagged once the range reaches 0.
TEST(SequenceMiscAbstract, ProofFailsWhenRangeWidens) {
  for (auto [lo, expect] : {std::pair{1.0, 0u}, std::pair{0.0, 1u}}) {
    ModelBuilder b(13);
    b.input("x", {1, 1, 2, 2}).initializer("scales", at::tensor({1.0f, 1.0f, 2.0f, 2.0f})).output("y", {1, 1, 4, 4});
    set_string(b.node("Resize", {"x", "", "scales"}, {"r"}, "resize"), "mode", "linear");
    b.node("Log", {"r"}, {"y"}, "log");
    EXPECT_EQ(analyze_built(b, ranges_of({{"x", {lo, 2}}}), "log").findings.size(), expect);
  }
}

}  // namespace
}  // namespace nanguard
