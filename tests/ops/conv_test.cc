// Tests for ops/conv.cc are being written.
