"""Benchmark runner, suites, report writers and performance benchmarks for reasoner."""
