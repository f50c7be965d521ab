"""Speed and memory measurements, run with `make bench` (`python -m benchmarks [name ...]`).

Each module `benchmarks/<name>.py` has a `main()` that prints its figures and returns whether it
met its targets (True/False), or None when it has no targets. Timing goals live here, never in
the test suite.
"""
