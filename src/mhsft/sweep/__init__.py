"""`mhsft sweep`: many trials of one recipe, checked once before the first starts, and one table to pick the best."""
