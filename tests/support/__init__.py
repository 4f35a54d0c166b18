"""Test helpers: the isolated environment, running mhsft, waiting on conditions, and local stand-in servers."""
