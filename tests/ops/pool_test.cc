// Tests for ops/pool.cc are being written.
