"""Benchmarks: one table from one honest run (`make bench`)."""
