"""Side-by-side performance benchmark (docs/PERFORMANCE.md): python benchmarks/run.py --help."""
