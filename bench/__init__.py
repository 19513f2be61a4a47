"""Benchmarks; run through `make bench`, which starts a database server for them."""
