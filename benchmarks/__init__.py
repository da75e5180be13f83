"""`make bench`: the chapter's quality and speed benchmarks (see run.py)."""
