"""Helpers for tests and benchmarks: never shipped in the wheel."""
