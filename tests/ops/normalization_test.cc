// Tests for ops/normalization.cc are being written.
