"""Side-by-side performance benchmark (issue 6): python benchmarks/run.py --help."""
