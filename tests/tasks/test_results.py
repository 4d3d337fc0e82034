from __future__ import annotations

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
