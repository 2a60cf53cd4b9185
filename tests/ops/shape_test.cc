// Tests for ops/shape.cc are being written.
