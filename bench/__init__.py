"""Benchmarks: ``python -m bench`` runs them all (bench/run_all.py, docs/benchmarks/README.md)."""
