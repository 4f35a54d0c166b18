"""`mhsft eval`: benchmarks and the held-out set, base vs fine-tuned, in one table."""
