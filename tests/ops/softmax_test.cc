// Tests for ops/softmax.cc are being written.
