"""Seeing runs: `mhsft runs show`, the end-of-train summary, `mhsft board` and `mhsft runs compare`."""
