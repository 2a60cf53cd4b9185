// Tests for ops/linear.cc are being written.
