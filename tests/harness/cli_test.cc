// The nanguard binary end to end: bad input is one clear line and exit code 2 with
// nothing written; a NaN model exits 1 naming the node; a clean one exits 0.
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "oracle/input_source.h"
#include "test_models.h"

namespace nanguard {
namespace {

using testing::ModelBuilder;

struct CliResult {
  int code = -1;
  std::string out, err;
};

CliResult run_cli(const std::string& args) {
  // ctest runs the cases in parallel processes: one stderr file per process and call.
  static int calls = 0;
  std::string err_path = testing::test_tmp_dir() + "/stderr_" + std::to_string(getpid()) + "_" + std::to_string(calls++) + ".txt";
  std::string cmd = std::string(NANGUARD_BINARY) + " " + args + " 2>" + err_path;
  CliResult r;
  FILE* pipe = popen(cmd.c_str(), "r");
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) r.out.append(buf.data(), n);
  int status = pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(err_path);
  r.err.assign(std::istreambuf_iterator<char>(in), {});
  return r;
}

void expect_usage_error(const CliResult& r, const std::string& part) {
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find(part), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line expected: " << r.err;
}

std::string log_model() {
  ModelBuilder b;
  b.input("x", {2, 3}).initializer("one", at::ones({1})).output("y", {2, 3});
  b.node("Sub", {"x", "x"}, {"zero"}, "sub_xx");
  b.node("Sub", {"zero", "one"}, {"minus_one"}, "sub_one");
  b.node("Log", {"minus_one"}, {"y"}, "log");
  return b.save("cli_log.onnx");
}

std::string exp_model() {
  ModelBuilder b;
  b.input("x", {3}).output("y", {3});
  b.node("Exp", {"x"}, {"y"}, "exp");
  return b.save("cli_exp.onnx");
}

TEST(Cli, NaNModelExitsOneAndNamesTheLogNode) {
  CliResult r = run_cli("run " + log_model() + " --range x=0,1 --format json");
  EXPECT_EQ(r.code, 1) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["first_nonfinite"], "log");
  EXPECT_EQ(j["nonfinite_nodes"][0]["op"], "Log");
  EXPECT_EQ(j["nonfinite_nodes"][0]["nan"], 6);
  CliResult text = run_cli("run " + log_model());
  EXPECT_EQ(text.code, 1);
  EXPECT_NE(text.out.find("first: 'log'"), std::string::npos) << text.out;
}

TEST(Cli, RangesDecideAndSamplesCount) {
  EXPECT_EQ(run_cli("run " + exp_model() + " --range x=-10,10").code, 0);
  CliResult r = run_cli("run " + exp_model() + " --range x=89,100 --samples 3 --format json");
  EXPECT_EQ(r.code, 1);
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["failing_samples"], 3);
  EXPECT_EQ(j["nonfinite_nodes"][0]["node"], "exp");
}

TEST(Cli, InputsFromTensorFilesAndSavedOutputs) {
  std::string dir = testing::test_tmp_dir() + "/cli_io";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  {
    onnx::TensorProto t;
    t.set_data_type(onnx::TensorProto::FLOAT);
    t.add_dims(3);
    for (float v : {0.f, 1.f, 2.f}) t.add_float_data(v);
    std::ofstream(dir + "/x.pb", std::ios::binary) << t.SerializeAsString();
  }
  CliResult r = run_cli("run " + exp_model() + " --input x=" + dir + "/x.pb --save-outputs " + dir + "/out");
  EXPECT_EQ(r.code, 0) << r.err;
  onnx::TensorProto y;
  std::ifstream in(dir + "/out/output_0.pb", std::ios::binary);
  ASSERT_TRUE(y.ParseFromIstream(&in));
  ASSERT_EQ(y.raw_data().size(), 12u);
  float v[3];
  std::memcpy(v, y.raw_data().data(), 12);
  EXPECT_FLOAT_EQ(v[2], std::exp(2.f));
}

// A model whose output is a sequence: run prints what it holds; --save-outputs,
// which writes tensors, refuses it before making the folder; analyze names it.
TEST(Cli, SequenceOutputsAreShownNotSaved) {
  testing::ModelBuilder b;
  b.input("x", {2});
  b.node("SequenceConstruct", {"x", "x"}, {"s"});
  auto* out = b.proto().mutable_graph()->add_output();
  out->set_name("s");
  out->mutable_type()->mutable_sequence_type()->mutable_elem_type()->mutable_tensor_type()->set_elem_type(
      onnx::TensorProto::FLOAT);
  std::string model = b.save("cli_seq.onnx"), dir = testing::test_tmp_dir() + "/cli_seq_out";
  std::filesystem::remove_all(dir);
  CliResult r = run_cli("run " + model);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("s  sequence of 2 tensors"), std::string::npos) << r.out;
  expect_usage_error(run_cli("run " + model + " --save-outputs " + dir), "output 's' is a sequence of 2 tensors");
  EXPECT_FALSE(std::filesystem::exists(dir));
  expect_usage_error(run_cli("analyze " + model), "'s' is a sequence value, which the analysis does not model");
}

TEST(Cli, BadInputsExitTwoWithOneLine) {
  std::string dir = testing::test_tmp_dir();
  std::ofstream(dir + "/garbage.onnx", std::ios::binary) << "\x0a\xff\xff\xff\xff garbage";
  expect_usage_error(run_cli("run " + dir + "/missing.onnx"), "no such file");
  expect_usage_error(run_cli("run " + dir + "/garbage.onnx"), "not a valid ONNX model");
  expect_usage_error(run_cli("run " + log_model() + " --range x=1"), "expected NAME=LO,HI");
  expect_usage_error(run_cli("run " + log_model() + " --range x=2,1"), "LO is greater than HI");
  expect_usage_error(run_cli("run " + log_model() + " --range nope=0,1"), "not an input of the model");
  expect_usage_error(run_cli("run " + log_model() + " --input x=" + dir + "/missing.pb"), "cannot open tensor file");
  expect_usage_error(run_cli("run " + log_model() + " --dim N=abc"), "--dim 'N=abc'");
  expect_usage_error(run_cli("run " + log_model() + " --bogus"), "nanguard:");
  expect_usage_error(run_cli("frobnicate"), "nanguard:");
  if (!at::hasCUDA()) expect_usage_error(run_cli("run " + log_model() + " --device cuda"), "no CUDA");
}

TEST(Cli, ModelErrorsExitTwo) {
  ModelBuilder newer(18);
  newer.input("x", {2}).output("y", {2});
  newer.node("Relu", {"x"}, {"y"});
  expect_usage_error(run_cli("run " + newer.save("cli_opset18.onnx")), "opset 18 is newer than 17");

  ModelBuilder cycle;
  cycle.input("x", {2}).output("y", {2});
  cycle.node("Add", {"x", "b"}, {"a"}, "first");
  cycle.node("Relu", {"a"}, {"b"}, "second");
  cycle.node("Relu", {"a"}, {"y"}, "third");
  expect_usage_error(run_cli("run " + cycle.save("cli_cycle.onnx")), "cycle through node");

  ModelBuilder undefined;
  undefined.input("x", {2}).output("y", {2});
  undefined.node("Add", {"x", "ghost"}, {"y"}, "add");
  expect_usage_error(run_cli("run " + undefined.save("cli_undef.onnx")), "reads tensor 'ghost'");

  ModelBuilder big;
  big.symbolic_input("x", {"N", "M"}).output("y", {-1, -1});
  big.node("Relu", {"x"}, {"y"});
  expect_usage_error(run_cli("run " + big.save("cli_big.onnx") + " --dim N=65536 --dim M=65536"),
                     "over the cap");

  ModelBuilder unsupported;
  unsupported.input("x", {2}).output("y", {-1});
  unsupported.node("NonMaxSuppression", {"x", "x"}, {"y"});
  expect_usage_error(run_cli("run " + unsupported.save("cli_nms.onnx")), "unsupported ONNX op: NonMaxSuppression");
}

TEST(Cli, ExternalDataOutsideTheFolderIsRefused) {
  namespace fs = std::filesystem;
  std::string dir = testing::test_tmp_dir() + "/cli_ext/model";
  fs::create_directories(dir);
  ModelBuilder b;
  b.input("x", {2}).output("y", {2});
  b.node("Add", {"x", "w"}, {"y"}, "add");
  auto* w = b.proto().mutable_graph()->add_initializer();
  w->set_name("w");
  w->set_data_type(onnx::TensorProto::FLOAT);
  w->add_dims(2);
  w->set_data_location(onnx::TensorProto::EXTERNAL);
  auto* kv = w->add_external_data();
  kv->set_key("location");
  kv->set_value("../../../../etc/passwd");
  std::ofstream(dir + "/model.onnx", std::ios::binary | std::ios::trunc) << b.bytes();
  expect_usage_error(run_cli("run " + dir + "/model.onnx"), "leaves the model's folder");
}

TEST(Cli, AnalyzeExitCodesAndReports) {
  // exp(x) for x in [-10, 10] is proved; [0, 100] can overflow.
  CliResult proved = run_cli("analyze " + exp_model() + " --range x=-10,10");
  EXPECT_EQ(proved.code, 0) << proved.err;
  EXPECT_NE(proved.out.find("proved: no op can produce NaN/INF"), std::string::npos) << proved.out;
  // A float32 model's proof says what it covers of the backward pass.
  EXPECT_NE(proved.out.find("gradients: each op's checked with an output gradient of 1"), std::string::npos) << proved.out;
  CliResult chained = run_cli("analyze " + exp_model() + " --range x=-10,10 --gradients chain");
  EXPECT_EQ(chained.code, 0) << chained.err;
  EXPECT_EQ(chained.out.find("gradients: each op's"), std::string::npos) << chained.out;
  expect_usage_error(run_cli("analyze " + exp_model() + " --gradients sideways"), "--gradients");
  CliResult json = run_cli("analyze " + exp_model() + " --range x=0,100 --format json");
  EXPECT_EQ(json.code, 1) << json.err;
  auto j = nlohmann::json::parse(json.out);
  EXPECT_EQ(j["gradients"], "local");
  ASSERT_EQ(j["findings"].size(), 1u);
  EXPECT_EQ(j["findings"][0]["node"], "exp");
  EXPECT_EQ(j["findings"][0]["op"], "Exp");
  EXPECT_EQ(j["findings"][0]["kind"], "forward");
  EXPECT_EQ(j["findings"][0]["hazard"], "exp-overflow");
  EXPECT_EQ(j["findings"][0]["status"], "possible");
  EXPECT_EQ(j["findings"][0]["operands"][0]["hi"], 100.0);
  CliResult sarif = run_cli("analyze " + exp_model() + " --range x=0,100 --format sarif");
  EXPECT_EQ(sarif.code, 1);
  auto s = nlohmann::json::parse(sarif.out);
  EXPECT_EQ(s["version"], "2.1.0");
  EXPECT_EQ(s["runs"][0]["tool"]["driver"]["rules"][0]["id"], "nanguard/exp-overflow");
  EXPECT_EQ(s["runs"][0]["results"][0]["ruleId"], "nanguard/exp-overflow");
  EXPECT_EQ(s["runs"][0]["results"][0]["locations"][0]["logicalLocations"][0]["name"], "exp");
  expect_usage_error(run_cli("analyze " + exp_model() + " --weights sometimes"), "--weights 'sometimes'");
  expect_usage_error(run_cli("analyze " + exp_model() + " --format xml"), "nanguard:");
}

// log(1 - t / (t + 1)) over t in [0, 10]: proved only by splitting t into cells.
TEST(Cli, AnalyzeReportsProofsByPartition) {
  ModelBuilder b;
  b.input("t", {1}).initializer("one", at::ones({1})).output("y", {1});
  b.node("Add", {"t", "one"}, {"t1"}, "plus_one");
  b.node("Div", {"t", "t1"}, {"ratio"}, "ratio");
  b.node("Sub", {"one", "ratio"}, {"rest"}, "rest");
  b.node("Log", {"rest"}, {"y"}, "log");
  std::string model = b.save("cli_partition.onnx");
  CliResult text = run_cli("analyze " + model + " --range t=0,10");
  EXPECT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("partition: 'log' proved log-nonpositive by splitting t into 64 cells"), std::string::npos)
      << text.out;
  auto j = nlohmann::json::parse(run_cli("analyze " + model + " --range t=0,10 --format json").out);
  ASSERT_EQ(j["partitions"].size(), 1u);
  EXPECT_EQ(j["partitions"][0]["node"], "log");
  EXPECT_EQ(j["partitions"][0]["cells"], 64);
  CliResult off = run_cli("analyze " + model + " --range t=0,10 --partition-budget 0");
  EXPECT_EQ(off.code, 1) << off.out;
  EXPECT_NE(off.out.find("log-nonpositive"), std::string::npos) << off.out;
  expect_usage_error(run_cli("analyze " + model + " --partition-budget -3"), "--partition-budget");
}

// A deep random conv stack: intervals report an overflow, norm bounds prove it finite.
TEST(Cli, AnalyzeBoundsADeepConvStackByNorms) {
  std::string model = testing::random_conv_stack(40, 64).save("cli_conv_stack.onnx");
  CliResult text = run_cli("analyze " + model + " --range x=0,1");
  EXPECT_EQ(text.code, 0) << text.out << text.err;
  EXPECT_NE(text.out.find("norm bounds: "), std::string::npos) << text.out;
  auto j = nlohmann::json::parse(run_cli("analyze " + model + " --range x=0,1 --format json").out);
  EXPECT_FALSE(j["norm_tightened"].empty());
  CliResult off = run_cli("analyze " + model + " --range x=0,1 --norm-above 0");
  EXPECT_EQ(off.code, 1) << off.out;
  EXPECT_NE(off.out.find("forward overflow"), std::string::npos) << off.out;
  expect_usage_error(run_cli("analyze " + model + " --norm-above -1"), "--norm-above");
}

TEST(Cli, OpsListsFacets) {
  CliResult r = run_cli("ops --format json");
  EXPECT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  bool log_found = false;
  for (const auto& op : j["ops"])
    if (op["op"] == "Log") {
      log_found = true;
      EXPECT_TRUE(op["analyze"].get<bool>());
      EXPECT_TRUE(op["hazards"].get<bool>());
    }
  EXPECT_TRUE(log_found);
  EXPECT_GE(j["ops"].size(), 100u);
}

TEST(Cli, NoHalfWrittenReportOnError) {
  std::string out = testing::test_tmp_dir() + "/report.json";
  std::filesystem::remove(out);
  CliResult r = run_cli("run " + testing::test_tmp_dir() + "/missing.onnx -o " + out);
  EXPECT_EQ(r.code, 2);
  EXPECT_FALSE(std::filesystem::exists(out));
  EXPECT_EQ(run_cli("run " + log_model() + " --format json -o " + out).code, 1);
  std::ifstream in(out);
  EXPECT_EQ(nlohmann::json::parse(in)["first_nonfinite"], "log");
}

// y = 1 / (x + 0.3): only x = -0.3f in [-1, 1] divides by exactly 0.
std::string div_model() {
  ModelBuilder b;
  b.input("x", {4}).initializer("c", at::full({1}, 0.3f)).initializer("one", at::ones({1})).output("y", {4});
  b.node("Add", {"x", "c"}, {"d"}, "add");
  b.node("Div", {"one", "d"}, {"y"}, "div");
  return b.save("cli_div.onnx");
}

TEST(Cli, TriggerWritesAReproducerThatReplays) {
  std::string out = testing::test_tmp_dir() + "/cli_repros";
  std::filesystem::remove_all(out);
  CliResult r = run_cli("trigger " + div_model() + " --range x=-1,1 --budget 20 --out " + out + " --format json");
  ASSERT_EQ(r.code, 1) << r.err;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["findings"].size(), 1u);
  const auto& f = j["findings"][0];
  EXPECT_EQ(f["node"], "div");
  EXPECT_EQ(f["hazard"], "div-by-zero");
  ASSERT_EQ(f["status"], "triggered") << f.dump();
  EXPECT_EQ(f["witness"]["devices"], nlohmann::json::array({"cpu"}));
  std::string dir = f["witness"]["reproducer"];
  EXPECT_TRUE(std::filesystem::exists(dir + "/test_data_set_0/input_0.pb"));
  CliResult replay = run_cli("replay " + dir);
  EXPECT_EQ(replay.code, 0) << replay.out << replay.err;
  EXPECT_NE(replay.out.find("reproduced"), std::string::npos);
  // Safe inputs in place of the witness: the NaN/INF is gone, replay says so.
  ASSERT_TRUE(write_tensor_file(at::ones({4}), "x", dir + "/test_data_set_0/input_0.pb").ok());
  CliResult safe = run_cli("replay " + dir);
  EXPECT_EQ(safe.code, 1) << safe.out << safe.err;
  EXPECT_NE(safe.out.find("NOT reproduced"), std::string::npos);
}

TEST(Cli, TriggerAndReplayErrors) {
  expect_usage_error(run_cli("trigger " + div_model() + " --range x=-1,1 --node nowhere"), "nowhere");
  expect_usage_error(run_cli("replay " + testing::test_tmp_dir() + "/no_such_repro"), "no_such_repro");
  CliResult clean = run_cli("trigger " + exp_model() + " --range x=0,1 --format json");
  EXPECT_EQ(clean.code, 0) << clean.err;
  EXPECT_TRUE(nlohmann::json::parse(clean.out)["findings"].empty());
}

// y = 2 * log(x), x of one element in [-1, 1]: about half the random runs give NaN,
// which starts at "log" (the Mul after it only carries it on).
std::string half_nan_model() {
  ModelBuilder b;
  b.input("x", {1}).initializer("two", at::full({1}, 2.f)).output("y", {1});
  b.node("Log", {"x"}, {"l"}, "log");
  b.node("Mul", {"l", "two"}, {"y"}, "scale");
  return b.save("cli_half_nan.onnx");
}

bool has_staging_beside(const std::string& dir) {
  std::filesystem::path p(dir);
  for (const auto& e : std::filesystem::directory_iterator(p.parent_path()))
    if (e.path().filename().string().rfind("." + p.filename().string() + ".partial", 0) == 0) return true;
  return false;
}

TEST(Cli, RunSavesFailingSamplesThatReplayAtTheSameNode) {
  std::string out = testing::test_tmp_dir() + "/cli_run_saved";
  std::filesystem::remove_all(out);
  std::string model = half_nan_model();
  CliResult r = run_cli("run " + model + " --range x=-1,1 --samples 20 --save-failing " + out + " --format json");
  ASSERT_EQ(r.code, 1) << r.err;
  auto j = nlohmann::json::parse(r.out);
  int64_t failing = j["failing_samples"];
  ASSERT_GT(failing, 0);
  ASSERT_LT(failing, 20) << "the model must fail on some samples only";
  ASSERT_EQ(j["saved"].size(), std::min<size_t>(5, failing)) << r.out;
  EXPECT_TRUE(j["not_saved"].empty()) << r.out;
  EXPECT_EQ(j["saved"][0]["sample"], j["nonfinite_nodes"][0]["first_sample"]);
  EXPECT_FALSE(has_staging_beside(out));
  for (const auto& s : j["saved"]) {
    EXPECT_EQ(s["node"], "log");
    std::string dir = s["reproducer"];
    EXPECT_EQ(std::filesystem::path(dir).parent_path(), std::filesystem::path(out));
    // The saved input is that sample's: outside log's domain.
    auto x = read_tensor_file(dir + "/test_data_set_0/input_0.pb");
    ASSERT_TRUE(x.ok()) << x.status().message();
    EXPECT_LE(x->item<float>(), 0.f) << dir;
  }
  std::string dir = j["saved"][0]["reproducer"];
  CliResult replay = run_cli("replay " + dir);
  EXPECT_EQ(replay.code, 0) << replay.out << replay.err;
  EXPECT_NE(replay.out.find(": log (Log) forward nan on cpu: reproduced ('log' = l: 1 NaN"), std::string::npos)
      << replay.out;
  // The same inputs through the original model: NaN again, first at the same node.
  CliResult again = run_cli("run " + model + " --input x=" + dir + "/test_data_set_0/input_0.pb --format json");
  EXPECT_EQ(again.code, 1) << again.err;
  EXPECT_EQ(nlohmann::json::parse(again.out)["first_nonfinite"], "log");
  // At most --save-max, and the text report names the folders.
  std::string two = testing::test_tmp_dir() + "/cli_run_saved_two";
  std::filesystem::remove_all(two);
  std::filesystem::create_directories(two);  // an empty folder is taken
  CliResult t = run_cli("run " + model + " --range x=-1,1 --samples 20 --save-failing " + two + " --save-max 2");
  EXPECT_EQ(t.code, 1) << t.err;
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(two), {}), 2);
  EXPECT_NE(t.out.find("(NaN/INF from 'log') -> " + two + "/"), std::string::npos) << t.out;
}

TEST(Cli, RunSaveFailingWritesWholeFoldersOrNothing) {
  std::string model = half_nan_model();
  std::string out = testing::test_tmp_dir() + "/cli_run_saved_full";
  std::filesystem::remove_all(out);
  std::filesystem::create_directories(out);
  std::ofstream(out + "/keep.txt") << "mine";
  expect_usage_error(run_cli("run " + model + " --range x=-1,1 --samples 20 --save-failing " + out),
                     "exists and is not an empty folder");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(out), {}), 1);
  std::string fresh = testing::test_tmp_dir() + "/cli_run_saved_none";
  std::filesystem::remove_all(fresh);
  // No failing run: no folder at all, not an empty one.
  EXPECT_EQ(run_cli("run " + model + " --range x=0.5,1 --samples 5 --save-failing " + fresh).code, 0);
  EXPECT_FALSE(std::filesystem::exists(fresh));
  EXPECT_FALSE(has_staging_beside(fresh));
  expect_usage_error(run_cli("run " + model + " --samples 5 --float64 --save-failing " + fresh), "float32");
  expect_usage_error(run_cli("run " + model + " --save-max 2"), "--save-failing");
  expect_usage_error(run_cli("run " + model + " --save-failing " + testing::test_tmp_dir() + "/no/such/dir"), "no such folder");
  // An infinity that a weight brings in (a -inf mask constant) and Add carries is a value,
  // born at no node: the runs do not fail, and nothing is saved.
  ModelBuilder b;
  b.input("x", {1}).initializer("minf", at::full({1}, -INFINITY)).output("y", {1});
  b.node("Add", {"x", "minf"}, {"y"}, "mask");
  CliResult w = run_cli("run " + b.save("cli_minf.onnx") + " --samples 3 --save-failing " + fresh + " --format json");
  EXPECT_EQ(w.code, 0) << w.err;
  auto j = nlohmann::json::parse(w.out);
  EXPECT_EQ(j["failing_samples"], 0);
  EXPECT_TRUE(j["saved"].empty());
  EXPECT_TRUE(j["not_saved"].empty()) << w.out;
  EXPECT_FALSE(std::filesystem::exists(fresh));
}

// y = log(x), x in [-1, 1], and its fixes: log(clip(x, 1/FLT_MAX rounded up)) holds
// (its gradient 1/x stays finite too), a clip at -1
// is no fix. validate's verdict is the exit code; replay --model runs a reproducer of
// the original against either.
struct LogFixModels {
  std::string original = testing::log_model({1}).save("cli_val_log.onnx");
  std::string fixed = testing::log_model({1}, std::nextafter(2.9387359e-39f, 1.f)).save("cli_val_fixed.onnx");
  std::string nofix = testing::log_model({1}, -1.f).save("cli_val_nofix.onnx");
};

TEST(Cli, ValidateExitCodes) {
  LogFixModels m;
  std::string flags = " --range x=-1,1 --budget 2 --samples 100";
  CliResult holds = run_cli("validate " + m.fixed + " --original " + m.original + flags + " --format json");
  EXPECT_EQ(holds.code, 0) << holds.out << holds.err;
  auto j = nlohmann::json::parse(holds.out);
  EXPECT_EQ(j["verdict"], "holds");
  EXPECT_TRUE(j["proved"].get<bool>());
  EXPECT_EQ(j["attacks"]["failures"], 0);
  EXPECT_EQ(j["agreement"]["share"], 1.0);
  CliResult broken = run_cli("validate " + m.nofix + " --original " + m.original + flags);
  EXPECT_EQ(broken.code, 1) << broken.out << broken.err;
  EXPECT_NE(broken.out.find("verdict: broken"), std::string::npos) << broken.out;
  expect_usage_error(run_cli("validate " + testing::test_tmp_dir() + "/missing.onnx" + flags), "no such file");
  expect_usage_error(run_cli("validate " + m.fixed + " --original " + testing::test_tmp_dir() + "/missing.onnx" + flags),
                     "no such file");
  expect_usage_error(run_cli("validate " + m.fixed + " --reproducers " + testing::test_tmp_dir() + "/no_repros" + flags),
                     "no_repros");
}

TEST(Cli, ReplayAgainstTheFixedModel) {
  LogFixModels m;
  std::string out = testing::test_tmp_dir() + "/cli_val_repros";
  std::filesystem::remove_all(out);
  CliResult t = run_cli("trigger " + m.original + " --range x=-1,1 --budget 5 --out " + out + " --format json");
  ASSERT_EQ(t.code, 1) << t.err;
  std::string dir = nlohmann::json::parse(t.out)["findings"][0]["witness"]["reproducer"];
  CliResult on_fixed = run_cli("replay " + dir + " --model " + m.fixed);
  EXPECT_EQ(on_fixed.code, 1) << on_fixed.out << on_fixed.err;
  EXPECT_NE(on_fixed.out.find("the fix holds on this reproducer"), std::string::npos) << on_fixed.out;
  EXPECT_EQ(run_cli("replay " + dir + " --model " + m.original).code, 0);
  CliResult v = run_cli("validate " + m.fixed + " --range x=-1,1 --budget 2 --samples 50 --reproducers " + out +
                        " --format json");
  EXPECT_EQ(v.code, 0) << v.out << v.err;
  bool seen = false;
  auto j = nlohmann::json::parse(v.out);
  for (const auto& a : j["attacks"]["by"]) seen |= a["name"] == "reproducers" && a["runs"].get<int>() >= 1;
  EXPECT_TRUE(seen) << v.out;
}

std::string log_softmax_model() {
  ModelBuilder b;
  b.input("x", {2, 4}).output("y", {2, 4});
  b.node("Softmax", {"x"}, {"p"}, "softmax");
  b.node("Log", {"p"}, {"y"}, "log");
  return b.save("cli_log_softmax.onnx");
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// check: the defective model exits 1 even though its fix holds; the folder holds
// every report, the reproducer and the fixed model; progress goes to stderr only.
TEST(Cli, CheckWritesTheReportFolderAndExitsOneOnADefectiveModel) {
  std::string out = testing::test_tmp_dir() + "/cli_check_report";
  CliResult r = run_cli("check " + log_softmax_model() + " --range x=-100,100 --budget 2 --samples 50 --format json --out " + out);
  ASSERT_EQ(r.code, 1) << r.out << r.err;
  auto j = nlohmann::json::parse(r.out);  // stdout is JSON alone
  ASSERT_EQ(j["findings"].size(), 1u);
  const auto& f = j["findings"][0];
  EXPECT_EQ(f["node"], "log");
  EXPECT_EQ(f["status"], "fixed");
  EXPECT_EQ(f["fix"]["rewrite"], "log-softmax");
  EXPECT_EQ(f["fix"]["validation"]["verdict"], "holds");
  EXPECT_EQ(f["fix"]["validation"]["failures"], 0);
  std::string repro = f["witness"]["reproducer"];
  EXPECT_TRUE(std::ifstream(out + "/" + repro + "/model.onnx").good());
  EXPECT_TRUE(std::ifstream(out + "/fixed.onnx").good());
  EXPECT_EQ(nlohmann::json::parse(slurp(out + "/report.json"))["findings"][0]["status"], "fixed");
  auto sarif = nlohmann::json::parse(slurp(out + "/report.sarif"));
  const auto& res = sarif["runs"][0]["results"][0];
  EXPECT_EQ(res["ruleId"], "nanguard/log-nonpositive");
  EXPECT_EQ(res["codeFlows"][0]["threadFlows"][0]["locations"].back()["location"]["logicalLocations"][0]["name"], "log");
  EXPECT_FALSE(res["fixes"].empty());
  EXPECT_FALSE(sarif["runs"][0]["tool"]["driver"].contains("informationUri"));
  std::string html = slurp(out + "/report.html");
  EXPECT_NE(html.find("<svg"), std::string::npos);  // the faulty path, drawn
  EXPECT_EQ(html.find("http://"), html.find("http://www.w3.org"));  // no network but SVG namespaces
  EXPECT_NE(r.err.find("trigger: finding 1 of 1"), std::string::npos) << r.err;
  CliResult replay = run_cli("replay " + out + "/" + repro + " --model " + out + "/fixed.onnx");
  EXPECT_NE(replay.out.find("the fix holds on this reproducer"), std::string::npos) << replay.out << replay.err;
  CliResult again = run_cli("check " + log_softmax_model() + " --range x=-100,100 --budget 0 --quiet --out " + out);
  EXPECT_EQ(again.code, 1);  // an earlier report folder is replaced
  EXPECT_TRUE(again.err.empty()) << again.err;
}

// A false alarm of the first analysis (x + 5 - x - 4.5 is 0.5) that the finer one
// refutes: the model is proved, check exits 0 and says which findings it refuted.
TEST(Cli, CheckExitsZeroWhenEveryFindingIsRefuted) {
  ModelBuilder b = testing::cancelling_log_model();
  std::string model = b.save("cli_check_refuted.onnx");
  CliResult r = run_cli("check " + model + " --range x=-10,10 --budget 1 --quiet --format json");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j["proved"].get<bool>());
  ASSERT_EQ(j["findings"].size(), 1u);
  EXPECT_EQ(j["findings"][0]["status"], "refuted");
  CliResult t = run_cli("trigger " + model + " --range x=-10,10 --budget 1 --quiet");
  EXPECT_EQ(t.code, 0);
  EXPECT_NE(t.out.find("1 refuted"), std::string::npos) << t.out;
}

TEST(Cli, CheckExitsZeroOnAProvedModelAndTwoOnErrors) {
  ModelBuilder b;
  b.input("x", {2, 4}).output("y", {2, 4});
  b.node("LogSoftmax", {"x"}, {"y"}, "log_softmax");
  CliResult ok = run_cli("check " + b.save("cli_check_safe.onnx") + " --range x=-100,100 --quiet");
  EXPECT_EQ(ok.code, 0) << ok.out << ok.err;
  EXPECT_NE(ok.out.find("proved"), std::string::npos) << ok.out;
  std::string busy = testing::test_tmp_dir() + "/cli_check_busy";
  std::filesystem::create_directories(busy);
  std::ofstream(busy + "/keep.txt") << "user data";
  expect_usage_error(run_cli("check " + log_softmax_model() + " --range x=-1,1 --out " + busy), "not a nanguard report folder");
  EXPECT_TRUE(std::ifstream(busy + "/keep.txt").good());
  expect_usage_error(run_cli("check " + log_softmax_model() + " --range nope=-1,1"), "nope");
  expect_usage_error(run_cli("chekc model.onnx"), "unknown command 'chekc'");
}

}  // namespace
}  // namespace nanguard

namespace nanguard {
namespace {

// fix: proved fixes exit 0 and write a model that keeps the output names and passes
// analyze; an unfixable overflow exits 1 and names its reason; errors exit 2 and
// write nothing.
TEST(Cli, FixExitCodesAndTheFixedModel) {
  std::string fixed = testing::test_tmp_dir() + "/cli_fixed_exp.onnx";
  std::remove(fixed.c_str());
  CliResult r = run_cli("fix " + exp_model() + " --range x=-1000,1000 --at immediate --format json --out " + fixed);
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["findings"][0]["status"], "fixed");
  EXPECT_EQ(j["findings"][0]["fix"]["at"], "immediate");
  EXPECT_EQ(j["out"], fixed);
  CliResult a = run_cli("analyze " + fixed + " --range x=-1000,1000");
  EXPECT_EQ(a.code, 0) << a.out;
  ModelBuilder b;
  b.input("x", {1, 2}).output("y", {1, 2});
  b.initializer("w", at::full({2, 2}, 3e38f));  // not even |x| <= 1 keeps x @ w finite
  b.node("MatMul", {"x", "w"}, {"y"}, "matmul");
  CliResult over = run_cli("fix " + b.save("cli_overflow.onnx") + " --range x=-10,10");
  EXPECT_EQ(over.code, 1) << over.out << over.err;
  EXPECT_NE(over.out.find("NOT fixed"), std::string::npos) << over.out;
  std::string none = testing::test_tmp_dir() + "/cli_fix_none.onnx";
  expect_usage_error(run_cli("fix " + testing::test_tmp_dir() + "/missing.onnx --out " + none), "no such file");
  expect_usage_error(run_cli("fix " + exp_model() + " --node nowhere --out " + none), "nowhere");
  EXPECT_FALSE(std::ifstream(none).good());
}

}  // namespace
}  // namespace nanguard
