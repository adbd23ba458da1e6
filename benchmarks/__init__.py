"""Reproducible measurements, run by hand (`python -m benchmarks NAME`), never by the tests."""
