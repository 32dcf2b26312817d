"""Benchmarks: `mcs-v2g bench ...` (figures and ratios against Josev measured in the same run)."""
