"""Benchmarks that need more than pgq itself (see peers.py)."""
