#include "harness/fuzz/proto_mutator.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/reflection.h>

namespace nanguard::fuzz {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

struct Site {
  Message* message;
  const FieldDescriptor* field;
};

struct Tree {
  std::vector<Site> sites;             // every field of every message, set or not
  std::vector<std::string> strings;    // every string value: names to rewire edges with
};

constexpr size_t kMaxSites = 4096;

void collect(Message& m, Tree& tree, int depth) {
  if (depth > 16 || tree.sites.size() >= kMaxSites) return;
  const auto* d = m.GetDescriptor();
  const Reflection* r = m.GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    tree.sites.push_back({&m, f});
    bool msg = f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE;
    bool str = f->cpp_type() == FieldDescriptor::CPPTYPE_STRING && f->type() != FieldDescriptor::TYPE_BYTES;
    if (f->is_repeated()) {
      int n = r->FieldSize(m, f);
      for (int k = 0; k < n && tree.sites.size() < kMaxSites; ++k) {
        if (msg) collect(*r->MutableRepeatedMessage(&m, f, k), tree, depth + 1);
        if (str && tree.strings.size() < 512) tree.strings.push_back(r->GetRepeatedString(m, f, k));
      }
    } else if (r->HasField(m, f)) {
      if (msg) collect(*r->MutableMessage(&m, f), tree, depth + 1);
      if (str && tree.strings.size() < 512) tree.strings.push_back(r->GetString(m, f));
    }
  }
}

int64_t new_int(int64_t v, SplitMix& gen) {
  static constexpr int64_t kEdges[] = {0, 1, -1, 2, 7, 16, 255, 1 << 16, int64_t{1} << 31, int64_t{1} << 40,
                                       std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::min()};
  // Wrapping arithmetic (in unsigned): signed overflow is undefined, and UBSan stops
  // the run on it (found by fuzz_loader under ASan + UBSan).
  uint64_t u = static_cast<uint64_t>(v);
  switch (gen.next() % 4) {
    case 0: return static_cast<int64_t>(u + 1);
    case 1: return static_cast<int64_t>(u - 1);
    case 2: return static_cast<int64_t>(u * 2);
    default: return kEdges[gen.next() % (sizeof kEdges / sizeof *kEdges)];
  }
}

double new_double(double v, SplitMix& gen) {
  static constexpr double kEdges[] = {0.0, -0.0, 1.0, -1.0, 1e-45, 1e38, -1e38, 3.5e38,
                                      std::numeric_limits<double>::infinity(),
                                      std::numeric_limits<double>::quiet_NaN()};
  switch (gen.next() % 3) {
    case 0: return v * 2;
    case 1: return -v;
    default: return kEdges[gen.next() % (sizeof kEdges / sizeof *kEdges)];
  }
}

std::string new_string(const std::string& v, const Tree& tree, SplitMix& gen) {
  switch (gen.next() % 4) {
    case 0:
      if (!tree.strings.empty()) return tree.strings[gen.next() % tree.strings.size()];
      return v;
    case 1: return v.empty() ? v : v.substr(0, gen.next() % v.size());
    case 2: return v + static_cast<char>(gen.next() % 256);
    default: return "";
  }
}

// A singular field (or one element of a repeated one, index k >= 0) set anew.
void mutate_value(Message& m, const FieldDescriptor* f, int k, const Tree& tree, SplitMix& gen) {
  const Reflection* r = m.GetReflection();
  bool rep = k >= 0;
  switch (f->cpp_type()) {
#define NANGUARD_SET(TYPE, N, make)                                                                  \
  {                                                                                                  \
    auto old = rep ? r->GetRepeated##N(m, f, k) : r->Get##N(m, f);                                   \
    auto v = static_cast<TYPE>(make);                                                                \
    rep ? r->SetRepeated##N(&m, f, k, v) : r->Set##N(&m, f, v);                                      \
    break;                                                                                           \
  }
    case FieldDescriptor::CPPTYPE_INT32: NANGUARD_SET(int32_t, Int32, new_int(old, gen))
    case FieldDescriptor::CPPTYPE_INT64: NANGUARD_SET(int64_t, Int64, new_int(old, gen))
    case FieldDescriptor::CPPTYPE_UINT32: NANGUARD_SET(uint32_t, UInt32, new_int(old, gen))
    case FieldDescriptor::CPPTYPE_UINT64: NANGUARD_SET(uint64_t, UInt64, new_int(static_cast<int64_t>(old), gen))
    case FieldDescriptor::CPPTYPE_FLOAT: NANGUARD_SET(float, Float, new_double(old, gen))
    case FieldDescriptor::CPPTYPE_DOUBLE: NANGUARD_SET(double, Double, new_double(old, gen))
    case FieldDescriptor::CPPTYPE_BOOL: NANGUARD_SET(bool, Bool, !old)
    case FieldDescriptor::CPPTYPE_STRING: NANGUARD_SET(std::string, String, new_string(old, tree, gen))
#undef NANGUARD_SET
    case FieldDescriptor::CPPTYPE_ENUM: {
      const auto* e = f->enum_type();
      const auto* v = e->value(static_cast<int>(gen.next() % e->value_count()));
      rep ? r->SetRepeatedEnum(&m, f, k, v) : r->SetEnum(&m, f, v);
      break;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE: {
      Message* sub = rep ? r->MutableRepeatedMessage(&m, f, k) : r->MutableMessage(&m, f);
      sub->Clear();
      break;
    }
  }
}

void mutate_repeated(Message& m, const FieldDescriptor* f, const Tree& tree, SplitMix& gen) {
  const Reflection* r = m.GetReflection();
  int n = r->FieldSize(m, f);
  uint64_t op = n == 0 ? 1 : gen.next() % 4;
  if (op == 0) {  // remove one: swap it to the end, drop the last
    r->SwapElements(&m, f, static_cast<int>(gen.next() % n), n - 1);
    r->RemoveLast(&m, f);
  } else if (op == 1) {  // append a copy of an element (or a fresh one)
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      Message* added = r->AddMessage(&m, f);
      if (n) added->CopyFrom(r->GetRepeatedMessage(m, f, static_cast<int>(gen.next() % n)));
    } else {
      switch (f->cpp_type()) {
        case FieldDescriptor::CPPTYPE_INT32: r->AddInt32(&m, f, n ? r->GetRepeatedInt32(m, f, 0) : 1); break;
        case FieldDescriptor::CPPTYPE_INT64: r->AddInt64(&m, f, n ? r->GetRepeatedInt64(m, f, 0) : 1); break;
        case FieldDescriptor::CPPTYPE_UINT64: r->AddUInt64(&m, f, 1); break;
        case FieldDescriptor::CPPTYPE_UINT32: r->AddUInt32(&m, f, 1); break;
        case FieldDescriptor::CPPTYPE_FLOAT: r->AddFloat(&m, f, 1); break;
        case FieldDescriptor::CPPTYPE_DOUBLE: r->AddDouble(&m, f, 1); break;
        case FieldDescriptor::CPPTYPE_BOOL: r->AddBool(&m, f, true); break;
        case FieldDescriptor::CPPTYPE_STRING:
          r->AddString(&m, f, tree.strings.empty() ? "" : tree.strings[gen.next() % tree.strings.size()]);
          break;
        case FieldDescriptor::CPPTYPE_ENUM: r->AddEnum(&m, f, f->enum_type()->value(0)); break;
        default: break;
      }
    }
  } else if (op == 2) {
    r->SwapElements(&m, f, static_cast<int>(gen.next() % n), static_cast<int>(gen.next() % n));
  } else {
    mutate_value(m, f, static_cast<int>(gen.next() % n), tree, gen);
  }
}

}  // namespace

bool mutate_message(Message& message, SplitMix& gen) {
  Tree tree;
  collect(message, tree, 0);
  if (tree.sites.empty()) return false;
  const Site& s = tree.sites[gen.next() % tree.sites.size()];
  const Reflection* r = s.message->GetReflection();
  if (s.field->is_repeated()) {
    mutate_repeated(*s.message, s.field, tree, gen);
  } else if (s.field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && r->HasField(*s.message, s.field) &&
             gen.next() % 2) {
    r->ClearField(s.message, s.field);
  } else {
    mutate_value(*s.message, s.field, -1, tree, gen);
  }
  return true;
}

size_t mutate_serialized(uint8_t* data, size_t size, size_t max_size, uint32_t seed, Message& scratch,
                         const ByteMutator& bytes) {
  SplitMix gen{seed};
  scratch.Clear();
  if (gen.next() % 4 == 0 || !scratch.ParseFromArray(data, static_cast<int>(size))) return bytes(data, size, max_size);
  for (uint64_t n = 1 + gen.next() % 3; n > 0; --n) mutate_message(scratch, gen);
  std::string out;
  if (!scratch.SerializeToString(&out) || out.size() > max_size) return bytes(data, size, max_size);
  std::memcpy(data, out.data(), out.size());
  return out.size();
}

}  // namespace nanguard::fuzz
