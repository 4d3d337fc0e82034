"""Running a sweep: each run in turn, its results written as CLIP_benchmark names them, failures kept."""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from ..datamodule import CLIPDataModule
from ..probe.callback import LinearProbe
from ..reporting import write_results
from ..tasks.backbone import BACKBONES
from ..tasks.base import FrozenBackboneTask
from ..tasks.zeroshot import CLIPEvaluator
from .plan import Run

__all__ = ["Outcome", "RunOptions", "TrainerFactory", "run_sweep"]

# (run, its callbacks) -> the Trainer that tests it (its own log folder, the sweep's --trainer.* options)
TrainerFactory = Callable[[Run, list[Callback]], L.Trainer]


@dataclass(frozen=True)
class RunOptions:
    """What every run of a sweep shares besides the trainer."""

    batch_size: int = 64
    num_workers: int = 4
    download_root: str | None = None
    seed: int = 0
    probe: dict[str, Any] = field(default_factory=dict)  # LinearProbe's arguments


@dataclass
class Outcome:
    """A run's results per task (results.json content), or the error that stopped it."""

    run: Run
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0
    skipped: bool = False


def _task_and_data(run: Run, options: RunOptions) -> tuple[FrozenBackboneTask, L.LightningDataModule]:
    dataset = run.registry_name
    if run.is_retrieval:
        from ..caption_datamodule import CaptionDataModule  # the retrieval task's own data
        from ..tasks.retrieval import RetrievalEvaluator

        retrieval = RetrievalEvaluator(
            name=run.model, pretrained=run.pretrained, download_root=options.download_root, seed=options.seed
        )
        data: L.LightningDataModule = CaptionDataModule(
            dataset=dataset, root=run.root, batch_size=options.batch_size, num_workers=options.num_workers,
            transform=retrieval.preprocess,
        )  # fmt: skip
        return retrieval, data
    task = CLIPEvaluator(
        name=run.model, pretrained=run.pretrained, download_root=options.download_root, seed=options.seed,
        zero_shot="zeroshot_classification" in run.tasks,
    )  # fmt: skip
    data = CLIPDataModule(
        dataset=dataset, root=run.root, batch_size=options.batch_size, num_workers=options.num_workers,
        transform=task.preprocess,
    )  # fmt: skip
    return task, data


def execute(run: Run, options: RunOptions, make_trainer: TrainerFactory) -> dict[str, dict[str, Any]]:
    """Test ``run`` and return each of its tasks' results (results.json content, one task each)."""
    task, data = _task_and_data(run, options)
    callbacks: list[Callback] = []
    if "linear_probe" in run.run_tasks:
        callbacks.append(LinearProbe(**options.probe))
    trainer = make_trainer(run, callbacks)
    trainer.test(task, datamodule=data, verbose=False)  # the task prints its own summary
    result = task.results()
    return {name: result.only(name).to_json() for name in run.run_tasks if name in result.tasks}


def _read(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None  # absent or cut short: run it (again)
    return data if isinstance(data, dict) and "metrics" in data else None


def run_sweep(
    runs: list[Run], output: str, options: RunOptions, make_trainer: TrainerFactory, rank_zero: bool = True
) -> list[Outcome]:
    """Run every run whose results are not all in ``output`` yet; a failing run is kept with its error.

    Progress is printed as ``run i/N``. Results are written by rank zero only (``rank_zero``).
    """
    outcomes: list[Outcome] = []
    with BACKBONES.keeping():  # runs are model-major: each checkpoint is read once
        for i, run in enumerate(runs, 1):
            paths = {task: os.path.join(output, run.output_name(task)) for task in run.run_tasks}
            found = {task: _read(path) for task, path in paths.items()}
            if all(found.values()):
                outcomes.append(Outcome(run, {t: r for t, r in found.items() if r}, skipped=True))
                _say(rank_zero, f"run {i}/{len(runs)}: {run.label}: done before, skipped")
                continue
            _say(rank_zero, f"run {i}/{len(runs)}: {run.label} ...")
            start = time.perf_counter()
            try:
                results = execute(run, options, make_trainer)
            except Exception as err:  # a bad dataset must not stop the sweep
                message = f"{type(err).__name__}: {err}".strip().splitlines()[0][:500]
                outcomes.append(Outcome(run, error=message, seconds=time.perf_counter() - start))
                _say(rank_zero, f"run {i}/{len(runs)}: {run.label}: FAILED: {message}")
                if os.environ.get("CLIP_LIGHTNING_DEBUG"):
                    traceback.print_exc()
                continue
            seconds = time.perf_counter() - start
            if rank_zero:
                for task, result in results.items():
                    folder, name = os.path.split(paths[task])
                    write_results(folder, {**result, "seconds": round(seconds, 3)}, name=name)
            outcomes.append(Outcome(run, results, seconds=seconds))
            _say(rank_zero, f"run {i}/{len(runs)}: {run.label}: done in {seconds:.1f} s")
    return outcomes


def _say(rank_zero: bool, message: str) -> None:
    if rank_zero:
        print(f"[suite] {message}", flush=True)
