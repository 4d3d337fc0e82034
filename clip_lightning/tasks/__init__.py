"""Tasks on a frozen CLIP backbone: zero-shot classification first."""
