// Tests for ops/random.cc are being written.
