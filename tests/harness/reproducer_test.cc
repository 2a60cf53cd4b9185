// Reproducers: the ONNX backend-test layout, the faulty node's output added as a
// graph output, witness weights baked in, a round trip that reproduces, and no
// directory at all when writing fails.
#include <filesystem>

#include <gtest/gtest.h>

#include "harness/reproducer.h"
#include "ops/tensor_proto.h"
#include "model/onnx_loader.h"
#include "solver/confirm.h"
#include "test_models.h"

namespace nanguard {
namespace {

using testing::ModelBuilder;
namespace fs = std::filesystem;

// y = log(x * w): with the free weight w = 0 the Log sees 0.
Graph log_model() {
  ModelBuilder b;
  b.input("x", {3}).initializer("w", at::ones({1})).output("y", {3});
  b.node("Mul", {"x", "w"}, {"p"}, "mul");
  b.node("Log", {"p"}, {"y"}, "log");
  auto g = load_model(b.save("repro_log.onnx"));
  EXPECT_TRUE(g.ok());
  return std::move(*g);
}

ReproducerSpec spec_for(const Graph& g) {
  ReproducerSpec s;
  s.finding.node = "mul";
  s.finding.op_type = "Mul";
  s.finding.hazard = "overflow";
  s.feeds = {{"x", at::tensor({1.f, 2.f, 3.f})}, {"w", at::zeros({1})}};
  s.devices = {"cpu"};
  s.strategy = "test";
  s.model_path = g.model_path;
  return s;
}

TEST(Reproducer, RoundTripReproducesAtTheNode) {
  Graph g = log_model();
  ReproducerSpec s = spec_for(g);
  s.finding.node = "log";
  s.finding.op_type = "Log";
  s.finding.hazard = "log-nonpositive";
  std::string dir = testing::test_tmp_dir() + "/repro_roundtrip";
  Status w = write_reproducer(g, s, dir);
  ASSERT_TRUE(w.ok()) << w.message();
  for (const char* f : {"model.onnx", "README.md", "test_data_set_0/input_0.pb", "test_data_set_0/output_0.pb"})
    EXPECT_TRUE(fs::exists(dir + "/" + f)) << f;
  EXPECT_FALSE(fs::exists(dir + ".partial"));
  auto rg = load_model(dir + "/model.onnx");
  ASSERT_TRUE(rg.ok()) << rg.status().message();
  auto rep = read_reproducer(dir, *rg);
  ASSERT_TRUE(rep.ok()) << rep.status().message();
  EXPECT_EQ(rep->finding.node, "log");
  EXPECT_EQ(rep->finding.hazard, "log-nonpositive");
  // The witness weight is baked in; the Mul output is not a graph output, the Log's is.
  EXPECT_EQ(tensor_from_proto(rg->initializers.at("w")).item<float>(), 0.f);
  auto c = confirm_witness(*rg, rep->finding, rep->operand, rep->inputs, at::kCPU);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->reproduced) << c->detail;
}

TEST(Reproducer, AddsTheFaultyNodesOutput) {
  ModelBuilder b;
  b.input("x", {3}).output("y", {3});
  b.node("Log", {"x"}, {"l"}, "log");
  b.node("Relu", {"l"}, {"y"}, "relu");
  auto g = load_model(b.save("repro_inner.onnx"));
  ASSERT_TRUE(g.ok());
  ReproducerSpec s;
  s.finding.node = "log";
  s.finding.op_type = "Log";
  s.finding.hazard = "log-nonpositive";
  s.feeds = {{"x", at::tensor({0.f, 1.f, 2.f})}};
  s.model_path = g->model_path;
  std::string dir = testing::test_tmp_dir() + "/repro_inner";
  ASSERT_TRUE(write_reproducer(*g, s, dir).ok());
  auto rg = load_model(dir + "/model.onnx");
  ASSERT_TRUE(rg.ok());
  EXPECT_EQ(rg->outputs, (std::vector<std::string>{"y", "l"}));
  EXPECT_TRUE(fs::exists(dir + "/test_data_set_0/output_1.pb"));
}

TEST(Reproducer, AWitnessThatDoesNotReproduceWritesNothing) {
  Graph g = log_model();
  ReproducerSpec s = spec_for(g);
  s.finding.node = "log";
  s.finding.op_type = "Log";
  s.feeds.at("w") = at::ones({1});  // log of 1, 2, 3: finite
  std::string dir = testing::test_tmp_dir() + "/repro_none";
  Status w = write_reproducer(g, s, dir);
  EXPECT_FALSE(w.ok());
  EXPECT_NE(w.message().find("does not reproduce"), std::string::npos) << w.message();
  EXPECT_FALSE(fs::exists(dir));
  EXPECT_FALSE(fs::exists(dir + ".partial"));
}

TEST(Reproducer, NotAReproducerIsAnError) {
  std::string dir = testing::test_tmp_dir() + "/repro_empty";
  fs::create_directories(dir);
  EXPECT_FALSE(read_reproducer_header(dir).ok());
  EXPECT_FALSE(read_reproducer_header(dir + "/missing").ok());
}

}  // namespace
}  // namespace nanguard
