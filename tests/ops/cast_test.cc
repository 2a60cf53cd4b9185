// Tests for ops/cast.cc are being written.
