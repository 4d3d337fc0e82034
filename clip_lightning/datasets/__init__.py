"""Datasets by name: one registry entry each, split carving, one module per source family."""
