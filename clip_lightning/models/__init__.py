"""CLIP itself: the architecture, its checkpoints, tokenizer and image transform."""
