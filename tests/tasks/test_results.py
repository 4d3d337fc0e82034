from __future__ import annotations

import pytest

from clip_lightning.reporting import print_summary
from clip_lightning.tasks.results import RunResult, TaskResult


def test_results_json_has_clip_benchmarks_keys_first_and_merges_tasks() -> None:
    run = RunResult(
        "cifar10", "ViT-B/32", "openai", "sha256:0", "openai", "ViT-B/32", "32-true", 2, ["a", "b"], ["{}."]
    )
    assert run.task == "features" and run.metrics == {} and run.num_test_samples is None
    run.tasks["zeroshot_classification"] = TaskResult({"acc1": 0.5}, num_samples=10)
    run.tasks["linear_probe"] = TaskResult({"lp_acc1": 0.75}, {"linear_probe": {"C": 0.316}})
    out = run.to_json()
    assert list(out)[:5] == ["dataset", "model", "pretrained", "task", "metrics"]
    assert out["task"] == "zeroshot_classification+linear_probe"
    assert out["metrics"] == {"acc1": 0.5, "lp_acc1": 0.75}
    assert out["num_test_samples"] == 10 and out["world_size"] == 2
    assert out["linear_probe"] == {"C": 0.316}


def test_results_json_names_the_main_metric_and_the_summary_shows_it_first(
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = RunResult(
        "flowers102", "RN50", "openai", "sha256:0", "openai", "RN50", "32-true", 1, ["a"], ["{}."]
    )
    assert run.to_json()["main_metric"] is None and run.to_json()["main_metric_value"] is None
    metrics = {"acc1": 0.5, "acc5": 0.75, "mean_per_class_recall": 0.25}
    run.tasks["zeroshot_classification"] = TaskResult(metrics, main_metric="mean_per_class_recall")
    run.tasks["linear_probe"] = TaskResult({"lp_acc1": 0.6}, main_metric="lp_acc1")
    out = run.to_json()
    assert (
        out["main_metric"] == "mean_per_class_recall" and out["main_metric_value"] == 0.25
    )  # the first task's
    print_summary(out, "results.json")
    rows = capsys.readouterr().out.splitlines()
    assert "mean_per_class_recall" in rows[1] and "(main metric)" in rows[1] and "25.00 %" in rows[1]
    assert "acc1" in rows[2]
