"""Benchmarks of the billing run and of the busiest pages (see bench/README.md)."""
