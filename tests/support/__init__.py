"""Test helpers that must not ship in the wheel: fakes, tiny random pipelines, media makers.

Benchmarks may import them too (they run from a source checkout).
"""
