// Tests for ops/binary.cc are being written.
