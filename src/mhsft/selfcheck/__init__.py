"""Is this machine ready? `mhsft doctor`, and `mhsft selftest` on a tiny local model."""
