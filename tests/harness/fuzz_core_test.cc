// The fuzz targets' plain parts: the byte layout and its decoder, seeds, the
// dictionary, the value mutator, the config file and the protobuf mutator.
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>

#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include "harness/fuzz/dictionary.h"
#include "harness/fuzz/fuzz_config.h"
#include "harness/fuzz/fuzz_layout.h"
#include "harness/fuzz/proto_mutator.h"
#include "harness/fuzz/seeds.h"
#include "harness/fuzz/value_mutator.h"

namespace nanguard::fuzz {
namespace {

uint32_t bits_of(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

TensorSlot slot(const std::string& name, std::vector<int64_t> shape, double lo, double hi) {
  return {name, std::move(shape), 1, lo, hi, false, false};
}

std::vector<float> decode_all(const std::vector<uint8_t>& bytes, const FuzzLayout& l, size_t i,
                              const float* stored = nullptr) {
  std::vector<float> out(static_cast<size_t>(l.slots[i].numel()));
  fill_float(bytes.data(), bytes.size(), l, i, stored, out.data());
  return out;
}

TEST(FuzzLayout, SizesCapTheExplicitValues) {
  FuzzLayout l{{slot("x", {2, 3}, 0, 1), slot("w", {1000, 1000}, -1, 1)}};
  EXPECT_EQ(l.slots[0].bytes(), kSlotHeader + 4 * 6);
  EXPECT_EQ(l.slots[1].bytes(), kSlotHeader + 4 * kExplicitValues);
  EXPECT_EQ(l.offset(1), l.slots[0].bytes());
  EXPECT_EQ(l.bytes(), l.slots[0].bytes() + l.slots[1].bytes());
}

TEST(FuzzLayout, InRangeBitPatternsDecodeExactly) {
  TensorSlot s = slot("x", {1}, -100, 88.7228394);
  for (float v : {0.0f, -0.0f, 88.7228317f, -100.0f, FLT_MIN, std::numeric_limits<float>::denorm_min()}) {
    double d = decode_value(bits_of(v), s);
    EXPECT_EQ(bits_of(static_cast<float>(d)), bits_of(v)) << v;
  }
}

TEST(FuzzLayout, OtherPatternsFoldIntoTheRange) {
  TensorSlot s = slot("x", {1}, 0.5, 2);
  for (uint32_t b : {0u, 0xffffffffu, 0x7f800000u, 0x7fc00000u, bits_of(-3.0f), bits_of(1e30f), 0x12345678u}) {
    double d = decode_value(b, s);
    EXPECT_GE(d, 0.5) << b;
    EXPECT_LE(d, 2.0) << b;
  }
  // A range whose ends are not float32 numbers: decoded values stay strictly inside.
  TensorSlot t = slot("y", {1}, 0.1, 0.3);
  for (uint32_t b : {0u, 0xffffffffu, bits_of(0.1f), bits_of(0.3f)}) {
    double d = decode_value(b, t);
    EXPECT_GE(d, 0.1);
    EXPECT_LE(d, 0.3);
  }
}

TEST(FuzzLayout, EncodeIsDecodesInverse) {
  TensorSlot s = slot("x", {1}, -5, 5);
  for (double v : {-5.0, 5.0, 0.0, 1.5, 3.25}) EXPECT_EQ(decode_value(encode_value(v, s), s), v);
  EXPECT_EQ(decode_value(encode_value(100, s), s), 5.0);  // clamped
  TensorSlot i{"k", {1}, 7, 0, 9, true, false};
  for (double v : {0.0, 4.0, 9.0}) EXPECT_EQ(decode_value(encode_value(v, i), i), v);
  EXPECT_EQ(decode_value(0xffffffffu, i), static_cast<double>(0xffffffffu % 10));
}

TEST(FuzzLayout, FillModes) {
  FuzzLayout l{{slot("w", {200}, -2, 3)}};
  std::vector<uint8_t> b(l.bytes(), 0);
  store_u32(b.data(), b.size(), kSlotHeader, bits_of(1.25f));
  store_u32(b.data(), b.size(), kSlotHeader + 4, bits_of(-2.0f));
  b[0] = static_cast<uint8_t>(FillMode::kConstant);
  for (float v : decode_all(b, l, 0)) EXPECT_EQ(v, 1.25f);
  b[0] = static_cast<uint8_t>(FillMode::kCorners);
  auto c = decode_all(b, l, 0);
  EXPECT_EQ(c[0], 1.25f);
  int lows = 0;
  for (size_t i = kExplicitValues; i < c.size(); ++i) {
    EXPECT_TRUE(c[i] == -2.0f || c[i] == 3.0f);
    lows += c[i] == -2.0f;
  }
  EXPECT_GT(lows, 20);  // both corners drawn
  EXPECT_LT(lows, 116);
  b[0] = static_cast<uint8_t>(FillMode::kTile);
  auto t = decode_all(b, l, 0);
  EXPECT_EQ(t[kExplicitValues], t[0]);
  EXPECT_EQ(t[kExplicitValues + 1], -2.0f);
  b[0] = static_cast<uint8_t>(FillMode::kUniform);
  auto u = decode_all(b, l, 0);
  for (float v : u) EXPECT_TRUE(v >= -2 && v <= 3);
  EXPECT_NE(u[100], u[101]);
  std::vector<float> stored(200, 2.5f);
  stored[150] = 99;  // outside the box: clamped
  b[0] = static_cast<uint8_t>(FillMode::kStored);
  auto s = decode_all(b, l, 0, stored.data());
  EXPECT_EQ(s[0], 1.25f);
  EXPECT_EQ(s[100], 2.5f);
  EXPECT_EQ(s[150], 3.0f);
}

TEST(FuzzLayout, ShortInputsReadAsZeros) {
  FuzzLayout l{{slot("x", {4}, 1, 2)}};
  auto v = decode_all({}, l, 0);
  for (float x : v) EXPECT_EQ(x, 1.0f);  // the zero pattern folds to the low end
}

TEST(FuzzSeeds, StoredSeedDecodesToTheStoredValues) {
  FuzzLayout l{{slot("x", {3}, 0, 1), {"w", {2, 2}, 1, -1, 1, false, true}}};
  std::vector<std::vector<float>> stored{{}, {0.5f, -0.25f, 0.75f, 1.0f}};
  auto b = encode_seed(l, FillMode::kStored, 1, stored);
  ASSERT_EQ(b.size(), l.bytes());
  auto w = decode_all(b, l, 1);
  EXPECT_EQ(w, stored[1]);
  auto x = decode_all(b, l, 0);
  for (float v : x) EXPECT_EQ(v, 0.5f);
  auto corners = encode_seed(l, FillMode::kCorners, 1);
  auto cx = decode_all(corners, l, 0);
  EXPECT_EQ(cx[0], 0.0f);
  EXPECT_EQ(cx[1], 1.0f);
}

TEST(FuzzDictionary, EntriesAreFloat32BitPatterns) {
  std::string text = dictionary_text({{1.0, "one"}, {1.0, "again"}, {-0.0, "negative zero"}, {INFINITY, "dropped"}});
  EXPECT_NE(text.find("v0=\"\\x00\\x00\\x80\\x3F\""), std::string::npos) << text;
  EXPECT_NE(text.find("v1=\"\\x00\\x00\\x00\\x80\""), std::string::npos) << text;
  EXPECT_EQ(text.find("v2="), std::string::npos) << text;  // duplicate and INF left out
  EXPECT_EQ(text.find("again"), std::string::npos);
}

TEST(FuzzDictionary, StandardEntriesHoldRangeEndsAndTinyValues) {
  FuzzLayout l{{slot("x", {1}, 0.25, 4)}};
  auto e = unique_entries(standard_entries(l));
  auto has = [&](double v) {
    for (const auto& d : e)
      if (bits_of(static_cast<float>(d.value)) == bits_of(static_cast<float>(v))) return true;
    return false;
  };
  for (double v : {0.25, 4.0, 0.0, -0.0, static_cast<double>(FLT_MIN),
                   static_cast<double>(std::numeric_limits<float>::denorm_min()),
                   static_cast<double>(std::nextafter(4.0f, 0.0f))})
    EXPECT_TRUE(has(v)) << v;
}

size_t no_bytes(uint8_t*, size_t size, size_t) { return size; }

TEST(FuzzMutator, TargetsAreTheRangesValues) {
  ValueMutator m(FuzzLayout{{slot("x", {4}, 0, 100), slot("y", {4}, 1, 2)}}, {88.5, -3.0, 1.5});
  auto has = [](const std::vector<double>& t, double v) { return std::find(t.begin(), t.end(), v) != t.end(); };
  EXPECT_TRUE(has(m.targets(0), 88.5));
  EXPECT_TRUE(has(m.targets(0), 0.0));
  EXPECT_FALSE(has(m.targets(0), -3.0));
  EXPECT_TRUE(has(m.targets(1), 1.5));
  EXPECT_FALSE(has(m.targets(1), 0.0));  // 0 is outside [1, 2]
}

TEST(FuzzMutator, MovesKeepTheLayoutAndLandOnTargets) {
  FuzzLayout l{{slot("x", {8}, -10, 50)}};
  ValueMutator m(l, {37.5});
  std::vector<uint8_t> buf(l.bytes() + 16, 0);
  SplitMix gen{7};
  size_t n = m.mutate(buf.data(), 3, buf.size(), 11, no_bytes);
  EXPECT_EQ(n, l.bytes());  // grown to the layout
  m.apply(Move::kFillSlot, buf.data(), n, buf.size(), gen, no_bytes);
  auto v = decode_all(buf, l, 0);
  for (float x : v) EXPECT_EQ(x, v[0]);
  bool hit_end = false;
  for (int i = 0; i < 400 && !hit_end; ++i) {
    m.apply(Move::kSet, buf.data(), n, buf.size(), gen, no_bytes);
    for (float x : decode_all(buf, l, 0)) hit_end |= x == 37.5f;
  }
  EXPECT_TRUE(hit_end);
}

TEST(FuzzMutator, UlpsAndApproachMoveTowardsATarget) {
  FuzzLayout l{{slot("x", {1}, 0, 1)}};
  ValueMutator m(l, {});
  std::vector<uint8_t> buf(l.bytes(), 0);
  store_u32(buf.data(), buf.size(), kSlotHeader, bits_of(0.5f));
  SplitMix gen{3};
  m.apply(Move::kUlps, buf.data(), buf.size(), buf.size(), gen, no_bytes);
  float x = decode_all(buf, l, 0)[0];
  EXPECT_NE(x, 0.5f);
  EXPECT_LT(std::fabs(x - 0.5f), 1e-5f);  // at most 16 ulps away
  m.apply(Move::kApproach, buf.data(), buf.size(), buf.size(), gen, no_bytes);
  float y = decode_all(buf, l, 0)[0];
  EXPECT_TRUE(y >= 0 && y <= 1);
  EXPECT_NE(y, x);
}

TEST(FuzzMutator, ByteMovesGoToTheFallback) {
  FuzzLayout l{{slot("x", {2}, 0, 1)}};
  ValueMutator m(l, {});
  std::vector<uint8_t> buf(l.bytes(), 0);
  int calls = 0;
  SplitMix gen{1};
  m.apply(Move::kBytes, buf.data(), buf.size(), buf.size(), gen, [&](uint8_t*, size_t s, size_t) { ++calls; return s; });
  EXPECT_EQ(calls, 1);
  // No room for the layout: only the fallback may run.
  calls = 0;
  m.mutate(buf.data(), 2, 4, 5, [&](uint8_t*, size_t s, size_t) { ++calls; return s; });
  EXPECT_EQ(calls, 1);
}


TEST(FuzzMutator, RedrawGivesEverySlotANewSeedAndKeepsItsValues) {
  FuzzLayout l{{slot("x", {4}, 0, 1), slot("w", {100}, -1, 1)}};
  ValueMutator m(l, {});
  std::vector<uint8_t> buf(l.bytes(), 0);
  store_u32(buf.data(), buf.size(), l.offset(1) + kSlotHeader, bits_of(0.25f));
  SplitMix gen{9};
  EXPECT_EQ(m.apply(Move::kRedraw, buf.data(), buf.size(), buf.size(), gen, no_bytes), l.bytes());
  for (size_t s = 0; s < 2; ++s) EXPECT_NE(load_u32(buf.data(), buf.size(), l.offset(s) + 4), 0u) << s;
  EXPECT_EQ(decode_all(buf, l, 1)[0], 0.25f);  // the explicit values stay
}

TEST(FuzzMutator, MutateStacksMovesAndMixesInByteMutation) {
  FuzzLayout l{{slot("x", {8}, -10, 50)}};
  ValueMutator m(l, {37.5});
  std::vector<uint8_t> buf(l.bytes(), 0);
  int calls = 0, runs = 300;
  auto counting = [&](uint8_t*, size_t s, size_t) { ++calls; return s; };
  for (int i = 0; i < runs; ++i) EXPECT_EQ(m.mutate(buf.data(), buf.size(), buf.size(), i, counting), l.bytes());
  // About a third of 2.5 moves per call are byte moves.
  EXPECT_GT(calls, runs / 2);
  EXPECT_LT(calls, runs * 3 / 2);
}
TEST(FuzzConfig, RoundTrip) {
  FuzzConfig c;
  c.source_model = "corpora/grist/3/model.onnx";
  c.weights = "free=-1,1";
  c.dims = {{"N", 4}};
  c.layout.slots = {slot("x", {2, 3}, 0, 1), {"labels", {2}, 7, 0, 9, true, false}};
  c.findings = {{"/Log", "Log", "forward", "log-nonpositive", 0}, {"/Sqrt", "Sqrt", "gradient", "sqrt-zero-gradient", 0}};
  c.baseline = {{"/Sqrt", "sqrt-zero-gradient"}};
  c.dictionary = {{88.72283935546875, "threshold"}};
  auto back = parse_config(config_json(c), "test");
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->layout.bytes(), c.layout.bytes());
  EXPECT_EQ(back->layout.slots[1].integer, true);
  EXPECT_EQ(back->dims.at("N"), 4);
  EXPECT_EQ(back->baseline, c.baseline);
  EXPECT_EQ(back->dictionary[0].value, 88.72283935546875);
  EXPECT_EQ(failure_hazard(*back, "/Log", true), "log-nonpositive");
  EXPECT_EQ(failure_hazard(*back, "/Sqrt", true), "sqrt-zero-gradient");
  EXPECT_EQ(failure_hazard(*back, "/Other", true), "nan");
  EXPECT_EQ(failure_hazard(*back, "/Other", false), "inf");
  EXPECT_FALSE(parse_config("{\"model\": 3}", "bad").ok());
}

TEST(FuzzConfig, BaselineFromAListOrASummary) {
  auto a = parse_baseline(R"([{"node": "/a", "hazard": "exp-overflow"}])", "a");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->count({"/a", "exp-overflow"}), 1u);
  auto b = parse_baseline(R"({"execs": 3, "crashes": [{"node": "/b", "op": "Log", "hazard": "nan"}]})", "b");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->count({"/b", "nan"}), 1u);
  EXPECT_FALSE(parse_baseline("[1, 2]", "c").ok());
}

onnx::ModelProto tiny_model() {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(13);
  auto* g = m.mutable_graph();
  g->set_name("g");
  auto* n = g->add_node();
  n->set_op_type("Log");
  n->add_input("x");
  n->add_output("y");
  g->add_input()->set_name("x");
  g->add_output()->set_name("y");
  return m;
}

TEST(FuzzProtoMutator, ChangesTheMessageAndStaysParsable) {
  onnx::ModelProto m = tiny_model();
  std::string before = m.SerializeAsString();
  SplitMix gen{42};
  int changed = 0;
  for (int i = 0; i < 50; ++i) {
    onnx::ModelProto c = m;
    mutate_message(c, gen);
    changed += c.SerializeAsString() != before;
  }
  EXPECT_GT(changed, 25);
  std::vector<uint8_t> buf(before.begin(), before.end());
  buf.resize(4096);
  onnx::ModelProto scratch;
  int fallback = 0;
  for (uint32_t seed = 0; seed < 40; ++seed) {
    std::vector<uint8_t> b(before.begin(), before.end());
    b.resize(4096);
    size_t n = mutate_serialized(b.data(), before.size(), b.size(), seed, scratch,
                                 [&](uint8_t*, size_t s, size_t) { ++fallback; return s; });
    onnx::ModelProto back;
    EXPECT_TRUE(back.ParseFromArray(b.data(), static_cast<int>(n)));
  }
  EXPECT_GT(fallback, 0);   // one call in four is byte mutation
  EXPECT_LT(fallback, 30);
}

TEST(FuzzProtoMutator, UnparsableBytesGoToTheFallback) {
  uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
  onnx::ModelProto scratch;
  int calls = 0;
  for (uint32_t seed = 0; seed < 8; ++seed)
    mutate_serialized(junk, sizeof junk, sizeof junk, seed, scratch, [&](uint8_t*, size_t s, size_t) { ++calls; return s; });
  EXPECT_EQ(calls, 8);
}

}  // namespace
}  // namespace nanguard::fuzz
