"""What a run leaves for people: results.json, a summary table, TensorBoard figures."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from .errors import ConfigError
from .metrics import per_class_recall

__all__ = [
    "FolderClaim",
    "RunLogger",
    "add_figure",
    "check_writable",
    "file_mode",
    "log_figures",
    "log_probe_search",
    "print_summary",
    "publish_figure",
    "results_dir",
    "write_predictions",
    "write_results",
]


def results_dir(trainer: L.Trainer) -> str:
    """The run's log directory (the TensorBoard version folder).

    A collective under DDP (``Trainer.log_dir`` broadcasts): call it on every process.
    """
    return trainer.log_dir or trainer.default_root_dir


class RunLogger(TensorBoardLogger):
    """TensorBoard's logger whose new ``version_N`` folder is claimed atomically.

    Lightning's logger picks the next free version by listing the folder, so two runs started
    together in one folder both took ``version_0`` and one's results.json overwrote the other's.
    Here rank 0 creates the folder it picks (``os.mkdir`` fails if another run got there first,
    and the next number is tried); other ranks are told the version by Lightning's broadcast.
    """

    def _get_next_version(self) -> int:
        version = super()._get_next_version()
        if getattr(rank_zero_only, "rank", 0) != 0 or "://" in str(self.root_dir):  # remote: as Lightning
            return version
        os.makedirs(self.root_dir, exist_ok=True)
        while True:
            try:
                os.mkdir(os.path.join(self.root_dir, f"version_{version}"))
                return version
            except FileExistsError:
                version += 1


def check_writable(folder: str, what: str, option: str) -> None:
    """Fail early, with what to pass instead, when ``folder`` cannot be created or written."""
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise ConfigError(
            f"cannot write {what} to {folder!r} ({err.strerror or err}); pass {option} with a folder "
            f"you can write to"
        ) from None


class FolderClaim:
    """An exclusive lock on a run folder's ``.clip_lightning.lock`` while one run writes results there.

    Runs given one folder (``--trainer.logger false`` and one ``default_root_dir``, or a logger that
    picks its version by listing) would overwrite each other's results.json; the second is refused
    before any work. The lock is the kernel's (``flock``): a killed run releases it.
    """

    def __init__(self, folder: str) -> None:
        self._file: IO[str] | None = None
        try:
            import fcntl
        except ImportError:  # not POSIX: nothing to lock with
            return
        handle = open(os.path.join(folder, ".clip_lightning.lock"), "a")  # noqa: SIM115 (held until release)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise ConfigError(
                f"another run is writing its results to {folder} now; give this run its own folder "
                "(another --trainer.logger.init_args.name or version, or --trainer.default_root_dir)"
            ) from None
        except OSError:  # a filesystem without locks: as before
            handle.close()
            return
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing drops the flock
            self._file = None


def file_mode() -> int:
    """The mode ``open()`` gives new files (0o666 less the umask); mkstemp's own is 0o600."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def _atomic_file(folder: str, name: str, mode: str) -> Iterator[IO[Any]]:
    """A temporary file in ``folder`` that replaces ``folder/name`` once written in full."""
    os.makedirs(folder, exist_ok=True)
    stem, suffix = os.path.splitext(name)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{stem}.", suffix=suffix)
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, mode) as f:
            yield f
        os.replace(tmp, os.path.join(folder, name))
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_results(folder: str, result: dict[str, Any], name: str = "results.json") -> str:
    """Write ``result`` as JSON atomically to ``folder/name``; return its path."""
    with _atomic_file(folder, name, "w") as f:
        json.dump(result, f, indent=2, ensure_ascii=False)
    return os.path.join(folder, name)


def write_predictions(
    folder: str, values: dict[str, torch.Tensor], index: torch.Tensor, classnames: list[str]
) -> str:
    """Write ``predictions.npz`` (``index`` and ``values`` rows in dataset order, class names)."""
    arrays: dict[str, Any] = {"index": index.numpy(), "classnames": np.array(classnames, dtype=str)}
    arrays.update({k: (v.float() if v.is_floating_point() else v).numpy() for k, v in values.items()})
    with _atomic_file(folder, "predictions.npz", "wb") as f:
        np.savez(f, **arrays)
    return os.path.join(folder, "predictions.npz")


def print_summary(result: dict[str, Any], path: str) -> None:
    """Print results.json's metrics as a table, the main metric (``result["main_metric"]``) first."""
    metrics = result["metrics"]
    main = result.get("main_metric")
    if main in metrics:
        metrics = {main: metrics[main], **{k: v for k, v in metrics.items() if k != main}}
    width = max([len(k) for k in metrics] + [10])

    def row(k: str, v: Any) -> str:
        value = f"{v * 100:7.2f} %" if isinstance(v, float) else f"{v}"
        return f"  {k:<{width}}  {value}" + ("  (main metric)" if k == main else "")

    lines = [
        f"{result['task']}: {result['model']} ({result['pretrained']} weights) on {result['dataset']}",
        *(row(k, v) for k, v in metrics.items()),
        f"  results: {path}",
    ]
    if result["pretrained"] == "random":
        lines.insert(1, "  RANDOM WEIGHTS: these numbers only show that the pipeline runs.")
    print("\n".join(lines), flush=True)


def _figures(matrix: torch.Tensor, classnames: list[str]) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(classnames)
    rows = matrix.double() / matrix.sum(dim=1, keepdim=True).clamp(min=1)
    size = min(4 + n * 0.35, 40)
    cm_fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(rows.numpy(), cmap="viridis", vmin=0, vmax=1)
    if n <= 50:
        ax.set_xticks(range(n), classnames, rotation=90, fontsize=8)
        ax.set_yticks(range(n), classnames, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    cm_fig.colorbar(image, ax=ax, fraction=0.046)
    cm_fig.tight_layout()

    recall = per_class_recall(matrix).nan_to_num(0.0)
    bar_fig, ax = plt.subplots(figsize=(max(6, min(n * 0.3, 60)), 4))
    ax.bar(range(n), recall.numpy() * 100)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    if n <= 50:
        ax.set_xticks(range(n), classnames, rotation=90, fontsize=8)
    bar_fig.tight_layout()
    return cm_fig, bar_fig


def add_figure(trainer: L.Trainer, tag: str, figure: Any) -> None:
    """Send a matplotlib figure to every logger that draws figures (TensorBoard)."""
    for logger in trainer.loggers:
        draw = getattr(getattr(logger, "experiment", None), "add_figure", None)
        if callable(draw):
            draw(tag, figure, close=False)


def publish_figure(trainer: L.Trainer, folder: str, name: str, tag: str, figure: Any) -> None:
    """Save ``figure`` as ``folder/name`` (PNG), send it to TensorBoard as ``tag``, and close it."""
    import matplotlib.pyplot as plt

    os.makedirs(folder, exist_ok=True)
    figure.savefig(os.path.join(folder, name), dpi=80)
    add_figure(trainer, tag, figure)
    plt.close(figure)


def log_figures(
    trainer: L.Trainer, folder: str, matrix: torch.Tensor, classnames: list[str], stage: str
) -> None:
    """Confusion matrix and per-class accuracy: to TensorBoard when it logs, and as PNGs. Rank 0 only."""
    cm_fig, bar_fig = _figures(matrix.cpu(), classnames)
    publish_figure(trainer, folder, f"{stage}_confusion_matrix.png", f"{stage}/confusion_matrix", cm_fig)
    publish_figure(trainer, folder, f"{stage}_per_class_accuracy.png", f"{stage}/per_class_accuracy", bar_fig)


def log_probe_search(trainer: L.Trainer, folder: str, scores: dict[float, float], chosen: float) -> None:
    """The linear probe's validation accuracy against C: to TensorBoard and as a PNG. Rank 0 only."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cs = sorted(scores)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(cs, [scores[c] * 100 for c in cs], "o-")
    ax.axvline(chosen, color="gray", linestyle="--", label=f"chosen C = {chosen:.3g}")
    ax.set_xscale("log")
    ax.set_xlabel("C (inverse L2 regularization)")
    ax.set_ylabel("validation accuracy (%)")
    ax.legend()
    fig.tight_layout()
    publish_figure(trainer, folder, "linear_probe_search.png", "test/linear_probe_search", fig)
