"""Test helpers that ship with the package (used by the test suite and the benchmarks)."""
