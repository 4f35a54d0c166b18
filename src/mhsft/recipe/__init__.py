"""Recipes as data: reading, validating and rendering them into swift argv (starts nothing, writes nothing)."""
