// Tests for ops/indexing.cc are being written.
