"""The typed record of a run's results, as results.json holds it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["RunResult", "TaskResult"]


@dataclass
class TaskResult:
    """What one task contributed: metrics (fractions, CLIP_benchmark's names) and JSON-able extras."""

    metrics: dict[str, float]
    extras: dict[str, Any] = field(default_factory=dict)
    num_samples: int | None = None
    main_metric: str | None = None  # the one of ``metrics`` the data is reported with


@dataclass
class RunResult:
    """One run: which model on which data, and each task's results in the order they were added."""

    dataset: str
    model: str
    pretrained: str
    checkpoint: str
    checkpoint_format: str
    checkpoint_source: str
    precision: str
    world_size: int
    classnames: list[str]
    templates: list[str]
    tasks: dict[str, TaskResult] = field(default_factory=dict)
    # (split, path) of unreadable images left out (--data.skip_bad_images)
    skipped_images: list[tuple[str, str]] = field(default_factory=list)

    @property
    def task(self) -> str:
        """CLIP_benchmark's ``task`` field: the tasks joined by ``+`` (``features`` when none)."""
        return "+".join(self.tasks) or "features"

    @property
    def metrics(self) -> dict[str, float]:
        """Every task's metrics in one mapping (their names do not overlap: ``acc1``, ``lp_acc1``)."""
        return {k: v for result in self.tasks.values() for k, v in result.metrics.items()}

    @property
    def main_metric(self) -> str | None:
        """The metric the run is reported with: the first task's that names one (None when none does)."""
        return next((r.main_metric for r in self.tasks.values() if r.main_metric is not None), None)

    @property
    def num_test_samples(self) -> int | None:
        return next((r.num_samples for r in self.tasks.values() if r.num_samples is not None), None)

    def only(self, task: str) -> RunResult:
        """This run as if it had done ``task`` alone (CLIP_benchmark's files hold one task each)."""
        return replace(self, tasks={task: self.tasks[task]})

    def to_json(self) -> dict[str, Any]:
        """results.json's content: CLIP_benchmark's keys first, then the run's details and extras."""
        out: dict[str, Any] = {
            "dataset": self.dataset,
            "model": self.model,
            "pretrained": self.pretrained,
            "task": self.task,
            "metrics": self.metrics,
            "main_metric": self.main_metric,
            "main_metric_value": self.metrics[self.main_metric] if self.main_metric is not None else None,
            "num_test_samples": self.num_test_samples,
            "precision": self.precision,
            "world_size": self.world_size,
            "checkpoint": self.checkpoint,
            "checkpoint_format": self.checkpoint_format,
            "checkpoint_source": self.checkpoint_source,
            "classnames": self.classnames,
            "templates": self.templates,
            "skipped_images": [{"split": split, "path": path} for split, path in self.skipped_images],
        }
        for result in self.tasks.values():
            out.update(result.extras)
        return out
