// Every bad input gets one clear error line naming the problem; good models load
// with dims bound, Constants folded and nodes sorted.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "model/onnx_loader.h"
#include "test_models.h"

namespace nanguard {
namespace {

using testing::ModelBuilder;

std::string error_of(const Result<Graph>& r) {
  EXPECT_FALSE(r.ok());
  return r.ok() ? "" : r.status().message();
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

ModelBuilder relu_model(int64_t opset = 13) {
  ModelBuilder b(opset);
  b.input("x", {2}).output("y", {-1});
  b.node("Relu", {"x"}, {"y"}, "relu");
  return b;
}

TEST(Loader, MissingFile) {
  std::string e = error_of(load_model("no/such/model.onnx"));
  EXPECT_TRUE(contains(e, "no/such/model.onnx: no such file")) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos);
}

TEST(Loader, CorruptProtobuf) {
  std::string path = testing::test_tmp_dir() + "/corrupt.onnx";
  std::ofstream(path, std::ios::binary) << "\x08\x96\x01 this is not protobuf \xff\xff\xff";
  EXPECT_TRUE(contains(error_of(load_model(path)), "not a valid ONNX model"));
  std::string empty = testing::test_tmp_dir() + "/empty.onnx";
  std::ofstream(empty, std::ios::binary).flush();
  EXPECT_TRUE(contains(error_of(load_model(empty)), "not a valid ONNX model"));
}

TEST(Loader, OpsetTooNewOrTooOld) {
  EXPECT_TRUE(contains(error_of(load_model(relu_model(18).save("opset18.onnx"))),
                       "opset 18 is newer than 17"));
  EXPECT_TRUE(contains(error_of(load_model(relu_model(6).save("opset6.onnx"))), "opset 6 is older than 7"));
  EXPECT_TRUE(load_model(relu_model(17).save("opset17.onnx")).ok());
}

TEST(Loader, Cycle) {
  ModelBuilder b;
  b.input("x", {2}).output("y", {-1});
  b.node("Add", {"x", "b"}, {"a"}, "first");
  b.node("Relu", {"a"}, {"b"}, "second");
  b.node("Relu", {"a"}, {"y"}, "third");
  EXPECT_TRUE(contains(error_of(load_model(b.save("cycle.onnx"))), "cycle through node 'first'"));
}

TEST(Loader, UndefinedInput) {
  ModelBuilder b;
  b.input("x", {2}).output("y", {-1});
  b.node("Add", {"x", "ghost"}, {"y"}, "add");
  std::string e = error_of(load_model(b.save("undefined.onnx")));
  EXPECT_TRUE(contains(e, "node 'add' (Add) reads tensor 'ghost'")) << e;
}

TEST(Loader, TensorOverTheCap) {
  ModelBuilder b;
  b.symbolic_input("x", {"N", "M"}).output("y", {-1, -1});
  b.node("Relu", {"x"}, {"y"}, "relu");
  LoadOptions opt;
  opt.dims = {{"N", 1 << 16}, {"M", 1 << 15}};  // 2^31 floats = 8 GiB
  std::string e = error_of(load_model(b.save("huge.onnx"), opt));
  EXPECT_TRUE(contains(e, "tensor 'x' would hold 2147483648 elements")) << e;
  EXPECT_TRUE(contains(e, "over the cap of 1073741824 bytes")) << e;
}

TEST(Loader, DimsAreBoundDefaultOne) {
  ModelBuilder b;
  b.symbolic_input("x", {"batch", "features"}).output("y", {-1, -1});
  b.node("Relu", {"x"}, {"y"}, "relu");
  LoadOptions opt;
  opt.dims = {{"features", 7}};
  auto g = load_model(b.save("dims.onnx"), opt);
  ASSERT_TRUE(g.ok()) << g.status().message();
  EXPECT_EQ(*g->type_of("x")->dims, (std::vector<int64_t>{1, 7}));
  EXPECT_EQ(*g->type_of("y")->dims, (std::vector<int64_t>{1, 7}));  // shape inference ran
}

TEST(Loader, ExternalDataMustStayInTheModelFolder) {
  namespace fs = std::filesystem;
  std::string dir = testing::test_tmp_dir() + "/ext/inner";
  fs::create_directories(dir);
  std::ofstream(testing::test_tmp_dir() + "/ext/secret.bin", std::ios::binary) << std::string(8, '\0');
  std::ofstream(dir + "/weights.bin", std::ios::binary) << std::string(8, '\0');
  for (const std::string loc : {"../secret.bin", "weights.bin", "/etc/passwd"}) {
    ModelBuilder b;
    b.input("x", {2}).output("y", {-1});
    b.node("Add", {"x", "w"}, {"y"}, "add");
    auto* w = b.proto().mutable_graph()->add_initializer();
    w->set_name("w");
    w->set_data_type(onnx::TensorProto::FLOAT);
    w->add_dims(2);
    w->set_data_location(onnx::TensorProto::EXTERNAL);
    auto* kv = w->add_external_data();
    kv->set_key("location");
    kv->set_value(loc);
    std::string path = dir + "/model.onnx";
    std::ofstream(path, std::ios::binary | std::ios::trunc) << b.bytes();
    auto g = load_model(path);
    if (loc == "weights.bin") {
      ASSERT_TRUE(g.ok()) << g.status().message();
      EXPECT_EQ(g->initializers.at("w").raw_data().size(), 8u);
    } else {
      std::string e = error_of(g);
      EXPECT_TRUE(contains(e, "leaves the model's folder") || contains(e, "must be a relative path")) << e;
    }
  }
}

TEST(Loader, ConstantsFoldAndNodesSort) {
  ModelBuilder b;
  b.input("x", {2}).output("y", {-1});
  b.node("Add", {"x", "c"}, {"y"}, "add");  // listed before its producer
  auto& c = b.node("Constant", {}, {"c"}, "const");
  auto* a = c.add_attribute();
  a->set_name("value_float");
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(2.5f);
  auto g = load_model(b.save("const.onnx"));
  ASSERT_TRUE(g.ok()) << g.status().message();
  ASSERT_EQ(g->nodes.size(), 1u);
  EXPECT_EQ(g->nodes[0].name, "add");
  EXPECT_TRUE(g->is_initializer("c"));
  EXPECT_EQ(g->producer("y")->name, "add");
}

TEST(Loader, UnnamedNodesGetStableNames) {
  ModelBuilder b;
  b.input("x", {2}).output("y", {-1});
  b.node("Relu", {"x"}, {"y"});
  auto g = load_model_proto(b.proto(), "m.onnx");
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->nodes[0].name, "Relu_0");
}

}  // namespace
}  // namespace nanguard
