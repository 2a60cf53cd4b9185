// Structure-aware mutation of a protobuf message (an ONNX ModelProto for fuzz_loader)
// through reflection, since libprotobuf-mutator is not in Debian 12: one change per
// call somewhere in the message tree (a scalar nudged to an edge value, an enum
// switched, a string replaced by another name found in the message so that graph
// edges are rewired, a repeated element removed, duplicated or swapped, a
// sub-message cleared or copied from another of its type). Plain C++ + protobuf.
#pragma once

#include <cstddef>
#include <cstdint>

#include <google/protobuf/message.h>

#include "harness/fuzz/fuzz_layout.h"
#include "harness/fuzz/value_mutator.h"

namespace nanguard::fuzz {

// One random change to `message`; false when it has no field to change.
bool mutate_message(google::protobuf::Message& message, SplitMix& gen);

// libFuzzer's view: parses data as `scratch`'s type, mutates it (or, one time in four
// or when it does not parse, calls `bytes`), serializes it back if it fits max_size.
size_t mutate_serialized(uint8_t* data, size_t size, size_t max_size, uint32_t seed,
                         google::protobuf::Message& scratch, const ByteMutator& bytes);

}  // namespace nanguard::fuzz
