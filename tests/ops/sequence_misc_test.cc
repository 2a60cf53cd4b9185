// Tests for ops/sequence_misc.cc are being written.
