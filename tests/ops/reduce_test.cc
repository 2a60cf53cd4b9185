// Tests for ops/reduce.cc are being written.
