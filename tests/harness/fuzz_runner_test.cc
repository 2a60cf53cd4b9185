// fuzz_model's runner (harness/fuzz/model_runner.h) without libFuzzer: a config
// folder for y = exp(w * x) + log(x), bytes that set x = 0 or push w * x past the
// exp threshold, and the failures, baseline and reproducers that follow.
#include <cstring>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "harness/fuzz/model_runner.h"
#include "harness/fuzz/seeds.h"
#include "harness/reproducer.h"
#include "test_models.h"

namespace nanguard::fuzz {
namespace {

namespace fs = std::filesystem;

uint32_t bits_of(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

// x in [0, 1] (4 elements), free weight w in [-100, 100] (stored 1).
std::string write_folder(const std::string& name, std::set<FailureKey> baseline = {}) {
  testing::ModelBuilder b;
  b.input("x", {4}).output("y", {4});
  b.initializer("w", at::ones({4}));
  b.node("Mul", {"x", "w"}, {"wx"}, "mul");
  b.node("Exp", {"wx"}, {"e"}, "exp");
  b.node("Log", {"x"}, {"l"}, "log");
  b.node("Add", {"e", "l"}, {"y"}, "add");
  fs::path dir = fs::path(testing::test_tmp_dir()) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "model.onnx", std::ios::binary) << b.bytes();
  FuzzConfig c;
  c.source_model = (dir / "model.onnx").string();
  c.layout.slots = {{"x", {4}, 1, 0, 1, false, false}, {"w", {4}, 1, -100, 100, false, true}};
  c.findings = {{"log", "Log", "forward", "log-nonpositive", 0}, {"exp", "Exp", "forward", "exp-overflow", 0}};
  c.baseline = std::move(baseline);
  std::ofstream(dir / kConfigFile) << config_json(c);
  return dir.string();
}

// Every x and w element set to the given values (constant fill).
std::vector<uint8_t> bytes_for(const FuzzLayout& l, float x, float w) {
  std::vector<uint8_t> b = encode_seed(l, FillMode::kConstant, 1);
  store_u32(b.data(), b.size(), l.offset(0) + kSlotHeader, bits_of(x));
  store_u32(b.data(), b.size(), l.offset(1) + kSlotHeader, bits_of(w));
  return b;
}

TEST(FuzzRunner, InRangeBytesRunFinite) {
  auto r = ModelRunner::open(write_folder("runner_finite"));
  ASSERT_TRUE(r.ok()) << r.status().message();
  auto b = bytes_for((*r)->config().layout, 0.5f, 2.0f);
  TensorMap feeds = (*r)->feeds(b.data(), b.size());
  EXPECT_EQ(feeds.at("x")[0].item<float>(), 0.5f);
  EXPECT_EQ(feeds.at("w")[3].item<float>(), 2.0f);
  EXPECT_TRUE((*r)->run(feeds).empty());
}

TEST(FuzzRunner, FailuresAreWhereNaNInfStarts) {
  auto r = ModelRunner::open(write_folder("runner_fail"));
  ASSERT_TRUE(r.ok()) << r.status().message();
  auto b = bytes_for((*r)->config().layout, 1.0f, 90.0f);  // exp(90) = INF; log(1) = 0
  auto f = (*r)->run((*r)->feeds(b.data(), b.size()));
  ASSERT_EQ(f.size(), 1u);  // the Add downstream is not an origin
  EXPECT_EQ(f[0].node, "exp");
  EXPECT_EQ(f[0].hazard, "exp-overflow");
  auto z = bytes_for((*r)->config().layout, 0.0f, 1.0f);  // log(0) = -INF
  f = (*r)->run((*r)->feeds(z.data(), z.size()));
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].node, "log");
  EXPECT_EQ(f[0].hazard, "log-nonpositive");
}

TEST(FuzzRunner, BaselineAcceptsAndReproducerReplays) {
  auto r = ModelRunner::open(write_folder("runner_baseline", {{"log", "log-nonpositive"}}));
  ASSERT_TRUE(r.ok()) << r.status().message();
  auto z = bytes_for((*r)->config().layout, 0.0f, 1.0f);
  TensorMap feeds = (*r)->feeds(z.data(), z.size());
  auto f = (*r)->run(feeds);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_TRUE((*r)->accepted(f[0]));
  std::string dir = (*r)->reproducer_dir(testing::test_tmp_dir() + "/runner_repro", f[0]);
  fs::remove_all(dir);
  ASSERT_TRUE((*r)->write_reproducer(f[0], feeds, dir).ok());
  auto header = read_reproducer_header(dir);
  ASSERT_TRUE(header.ok()) << header.status().message();
  EXPECT_EQ(header->finding.node, "log");
  EXPECT_EQ(header->finding.hazard, "log-nonpositive");
}

}  // namespace
}  // namespace nanguard::fuzz
