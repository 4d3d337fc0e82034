"""Inference speed-ups that keep the numerics, each with its exactness contract."""
