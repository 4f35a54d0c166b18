"""The dataset gate: find every data problem before a GPU is allocated, with ms-swift's own preprocessing."""
