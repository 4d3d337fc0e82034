"""The retrieval run's figure: example queries with their top-5 images and captions."""

from __future__ import annotations

import textwrap
from typing import Any

import lightning as L

from ..reporting import publish_figure

__all__ = ["log_retrieval_examples"]


def _wrap(text: str, width: int = 38, lines: int = 3) -> str:
    wrapped = textwrap.wrap(text, width) or [""]
    return "\n".join(wrapped[:lines]) + (" ..." if len(wrapped) > lines else "")


def log_retrieval_examples(
    trainer: L.Trainer,
    folder: str,
    data: Any,
    image_queries: list[tuple[int, list[int]]],
    caption_queries: list[tuple[int, list[int]]],
) -> None:
    """Draw image -> caption and caption -> image queries with their top results (positives in green).

    ``data`` is the CaptionDataModule (``image(i)``, ``captions``, ``caption_image``); each query is
    ``(index, [top key indices, best first])``. Saved as ``retrieval_examples.png`` and sent to
    TensorBoard. Rank 0 only.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    owner = data.caption_image.tolist()
    top = max([len(keys) for _, keys in image_queries + caption_queries] + [1])
    rows = len(image_queries) + len(caption_queries)
    fig, axes = plt.subplots(rows, top + 1, figsize=(2.6 * (top + 1), 2.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for row, (image, keys) in enumerate(image_queries):
        axes[row, 0].imshow(data.image(image))
        axes[row, 0].set_title(f"image #{image}", fontsize=8)
        for col, caption in enumerate(keys, start=1):
            colour = "green" if owner[caption] == image else "black"
            text = f"{col}. {_wrap(data.captions[caption])}"
            axes[row, col].text(0, 0.5, text, fontsize=7, color=colour, va="center", wrap=True)
    for row, (caption, keys) in enumerate(caption_queries, start=len(image_queries)):
        axes[row, 0].text(
            0, 0.5, f"caption #{caption}:\n{_wrap(data.captions[caption])}", fontsize=7, va="center"
        )
        for col, image in enumerate(keys, start=1):
            ax = axes[row, col]
            ax.imshow(data.image(image))
            ax.set_title(
                f"{col}. image #{image}", fontsize=7, color="green" if owner[caption] == image else "black"
            )
            if owner[caption] == image:
                ax.axis("on")
                ax.set_xticks([])
                ax.set_yticks([])
                for spine in ax.spines.values():
                    spine.set_color("green")
                    spine.set_linewidth(3)
    fig.suptitle("retrieval examples: image -> captions, caption -> images (positives in green)", fontsize=9)
    fig.tight_layout()
    publish_figure(trainer, folder, "retrieval_examples.png", "test/retrieval_examples", fig)
