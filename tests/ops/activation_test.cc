// Tests for ops/activation.cc are being written.
