// Validation of fixes on y = log(x), x in [-1, 1]: the clip at the smallest float32
// log keeps finite is proved, unbroken and changes no normal output; a clip at -1 (no
// fix) is broken by every attack; a clip at 0.5 holds but changes normal outputs.
#include <cmath>
#include <string>

#include <gtest/gtest.h>

#include "model/onnx_loader.h"
#include "solver/validate.h"
#include "test_models.h"

namespace nanguard {
namespace {

// The smallest float32 x with log(x) and its gradient 1/x finite: 1/FLT_MAX rounded
// up. 2.9387359e-39f itself rounds to 2^-128, whose 1/x is INF (trigger finds it).
const float kTiny = std::nextafter(2.9387359e-39f, 1.f);

Graph load(testing::ModelBuilder b, const std::string& file) {
  auto g = load_model(b.save(file));
  EXPECT_TRUE(g.ok()) << g.status().message();
  return std::move(*g);
}

ValidateOptions options(int64_t samples = 200) {
  ValidateOptions o;
  o.analyze.ranges = {{"x", {-1.0, 1.0}}};
  o.budget_seconds = 2;
  o.samples = samples;
  return o;
}

const AttackResult* attack(const ValidationReport& r, const std::string& name) {
  for (const auto& a : r.attacks)
    if (a.name == name) return &a;
  return nullptr;
}

TensorMap x_is(float v) { return {{"x", at::full({1}, v)}}; }

TEST(Validate, ClipAtTheSmallestSafeValueHolds) {
  Graph original = load(testing::log_model({1}), "val_log.onnx");
  Graph fixed = load(testing::log_model({1}, kTiny), "val_log_fixed.onnx");
  ValidateOptions o = options();
  o.reproducers = {{"x-is-zero", Finding{"log", "Log"}, x_is(0.f)}, {"x-is-minus-one", Finding{"log", "Log"}, x_is(-1.f)}};
  auto r = validate_fix(fixed, &original, o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r->proved());
  EXPECT_EQ(r->failures(), 0) << r->attacks.at(0).first_failure;
  EXPECT_EQ(r->verdict(), "holds");
  ASSERT_NE(attack(*r, "sampling"), nullptr);
  EXPECT_EQ(attack(*r, "sampling")->runs, 200);
  ASSERT_NE(attack(*r, "reproducers"), nullptr);
  EXPECT_GE(attack(*r, "reproducers")->runs, 2);  // per device
  ASSERT_NE(attack(*r, "original-witnesses"), nullptr);
  EXPECT_GE(attack(*r, "original-witnesses")->runs, 1);  // the original's log witness, now finite
  EXPECT_EQ(attack(*r, "trigger-guided"), nullptr);      // nothing left to search
  ASSERT_TRUE(r->agreement);
  // Uniform x in [-1, 1]: the original is finite exactly where x > 0, about half.
  EXPECT_EQ(r->agreement->samples, 200);
  EXPECT_GT(r->agreement->original_finite, 60);
  EXPECT_LT(r->agreement->original_finite, 140);
  EXPECT_EQ(r->agreement->unchanged, r->agreement->original_finite);
  EXPECT_EQ(r->agreement->share, 1.0);
  EXPECT_EQ(r->agreement->max_change, 0.0);
}

TEST(Validate, AgreementOnTheUsersInputs) {
  Graph original = load(testing::log_model({1}), "val_log.onnx");
  Graph fixed = load(testing::log_model({1}, kTiny), "val_log_fixed.onnx");
  ValidateOptions o = options(10);
  // 1e-40 is a subnormal below the clip: the original's log is finite there, the fix moves it.
  for (float v : {-0.5f, 0.f, 0.25f, 0.7f, 1.f, 1e-40f}) o.data.push_back(x_is(v));
  auto r = validate_fix(fixed, &original, o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_TRUE(r->agreement);
  EXPECT_EQ(r->agreement->samples, 6);
  EXPECT_EQ(r->agreement->original_finite, 4);
  EXPECT_EQ(r->agreement->unchanged, 3);
  double expected = std::abs(std::log(double{kTiny}) - std::log(1e-40)) / std::abs(std::log(1e-40));
  EXPECT_NEAR(r->agreement->max_change, expected, 1e-4);
}

TEST(Validate, NoFixIsBroken) {
  Graph original = load(testing::log_model({1}), "val_log.onnx");
  Graph fixed = load(testing::log_model({1}, -1.f), "val_log_nofix.onnx");
  ValidateOptions o = options();
  o.reproducers = {{"x-is-zero", Finding{"log", "Log"}, x_is(0.f)}};
  auto r = validate_fix(fixed, &original, o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_FALSE(r->proved());
  EXPECT_EQ(r->verdict(), "broken");
  EXPECT_GT(r->failures(), 0);
  for (const char* name : {"reproducers", "sampling", "original-witnesses", "trigger-guided"}) {
    ASSERT_NE(attack(*r, name), nullptr) << name;
    EXPECT_GT(attack(*r, name)->failures, 0) << name;
  }
  EXPECT_NE(attack(*r, "sampling")->first_failure.find("node 'log'"), std::string::npos)
      << attack(*r, "sampling")->first_failure;
}

TEST(Validate, AFixThatChangesNormalOutputsSaysSo) {
  Graph original = load(testing::log_model({1}), "val_log.onnx");
  Graph fixed = load(testing::log_model({1}, 0.5f), "val_log_half.onnx");
  auto r = validate_fix(fixed, &original, options());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->verdict(), "holds");
  ASSERT_TRUE(r->agreement);
  EXPECT_LT(r->agreement->share, 0.9);  // x in (0, 0.5) moves: about half of the finite ones
  EXPECT_GT(r->agreement->share, 0.1);
  EXPECT_GT(r->agreement->max_change, 0.1);
}

TEST(Validate, WithoutTheOriginalOnlyTheFixedModelIsAttacked) {
  Graph fixed = load(testing::log_model({1}, kTiny), "val_log_fixed.onnx");
  auto r = validate_fix(fixed, nullptr, options(50));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->verdict(), "holds");
  EXPECT_FALSE(r->agreement);
  EXPECT_EQ(r->runs(), 50);
}

TEST(Validate, AnotherModelIsAnError) {
  Graph original = load(testing::log_model({1}), "val_log.onnx");
  testing::ModelBuilder other;
  other.input("z", {1}).output("y", {1});
  other.node("Relu", {"z"}, {"y"}, "relu");
  Graph g = load(other, "val_other.onnx");
  auto r = validate_fix(g, &original, options());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not those of the original"), std::string::npos) << r.status().message();
}

TEST(Validate, FirstNonFiniteNamesTheNode) {
  Graph original = load(testing::log_model({1}), "val_log.onnx");
  auto bad = first_nonfinite(original, x_is(-1.f), false, at::kCPU);
  ASSERT_TRUE(bad.ok()) << bad.status().message();
  EXPECT_NE(bad->find("node 'log'"), std::string::npos) << *bad;
  auto good = first_nonfinite(original, x_is(0.5f), true, at::kCPU);
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, "");
}

}  // namespace
}  // namespace nanguard
