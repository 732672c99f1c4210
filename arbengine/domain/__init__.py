"""Leaf package: typed events, value parsing and the error tree. Imports nothing of ours."""
