"""Benchmarks of the billing run and of the busiest pages (see the README, section Benchmarks)."""
