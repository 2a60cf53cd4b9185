// Tests for ops/loss.cc are being written.
