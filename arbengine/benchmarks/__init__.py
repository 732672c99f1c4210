"""Benchmarks that run several packages together (the others live beside their package)."""
