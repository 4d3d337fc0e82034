"""Few-shot linear probes: the k-shot draw, the fits against scikit-learn, results.json, DDP."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, top_k_accuracy_score

from clip_lightning import LinearProbe
from clip_lightning.errors import ConfigError
from clip_lightning.probe.fewshot import FewShot, k_shot_indices
from tests.helpers import TINY_VIT, random_state_dict
from tests.test_cli import Cli, conf, results, run_cli

DIGITS_X, DIGITS_Y = load_digits(return_X_y=True)


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """The test's folder (its cwd) with ``tiny.pt``, the checkpoint tests/conf/zeroshot.yaml names."""
    torch.save(random_state_dict(TINY_VIT, seed=3), tmp_path / "tiny.pt")
    return tmp_path


def test_the_draw_is_k_per_class_seeded_and_nested() -> None:
    labels = DIGITS_Y[:600]
    index = np.arange(600)
    previous = np.empty(0, np.int64)
    for k in (1, 2, 4, 8, 16):
        chosen, short = k_shot_indices(index, labels, k, seed=0)
        assert short == [] and np.array_equal(chosen, np.sort(chosen))
        assert np.array_equal(np.bincount(labels[chosen], minlength=10), np.full(10, k))
        assert np.isin(previous, chosen).all()  # the 2-shot set holds the 1-shot one, and so on
        previous = chosen
        again, _ = k_shot_indices(index, labels, k, seed=0)
        assert np.array_equal(again, chosen)
    draws = {tuple(k_shot_indices(index, labels, 4, seed)[0]) for seed in range(5)}
    assert len(draws) == 5  # each seed its own draw


def test_the_draw_does_not_depend_on_feature_order_or_process_split() -> None:
    labels = DIGITS_Y[:500]
    index = np.arange(500) * 3 + 7  # dataset indices need not be 0..n-1
    chosen, _ = k_shot_indices(index, labels, 4, seed=1)
    order = np.random.default_rng(5).permutation(500)
    shuffled, _ = k_shot_indices(torch.from_numpy(index[order]), torch.from_numpy(labels[order]), 4, seed=1)
    assert np.array_equal(shuffled, chosen)
    # Two processes' shares (a distributed sampler's rank::2), gathered: the same draw.
    shares = [np.arange(rank, 500, 2) for rank in (0, 1)]
    gathered = np.concatenate([index[s] for s in shares]), np.concatenate([labels[s] for s in shares])
    assert np.array_equal(k_shot_indices(*gathered, 4, seed=1)[0], chosen)
    # Positions in index order (rank 0's gathered arrays) pick the same samples as the indices.
    by_position, _ = k_shot_indices(np.arange(500), labels, 4, seed=1)
    assert np.array_equal(index[by_position], chosen)
    with pytest.raises(ValueError, match="twice"):
        k_shot_indices(np.array([0, 1, 1]), np.array([0, 1, 1]), 1, 0)


def test_a_class_with_fewer_than_k_images_uses_all_it_has_and_is_named() -> None:
    labels = np.array([0] * 10 + [1] * 3 + [2] * 10)
    chosen, short = k_shot_indices(np.arange(23), labels, 4, seed=0)
    assert short == [1]
    assert np.array_equal(np.bincount(labels[chosen]), [4, 3, 4])
    assert set(chosen[labels[chosen] == 1]) == {10, 11, 12}


def _reference(x: np.ndarray, y: np.ndarray, xt: np.ndarray, yt: np.ndarray, C: float) -> dict:
    ref = LogisticRegression(solver="lbfgs", max_iter=1000, random_state=0, C=C).fit(x.astype(np.float64), y)
    proba = ref.predict_proba(xt)
    return {
        "acc1": ref.score(xt, yt),
        "acc5": top_k_accuracy_score(yt, proba, k=5, labels=ref.classes_),
        "mean_per_class_recall": balanced_accuracy_score(yt, ref.predict(xt)),
        "n_iter": int(ref.n_iter_[0]),
        "pred": ref.predict(xt),
    }


@pytest.mark.parametrize("solver", ["sklearn", "torch"])
def test_each_fit_equals_scikit_learn_on_the_same_k_shot_set(solver: str) -> None:
    x, y = DIGITS_X.astype(np.float32), DIGITS_Y
    train, test = (x[:1200], y[:1200]), (x[1200:], y[1200:])
    shots, seeds, C = [2, 8], [0, 3], 0.05
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = FewShot(shots, seeds).run(train, test, 10, C, C_from="given", solver=solver)  # type: ignore[arg-type]
    assert result.to_json()["per_k"].keys() == {"2", "8"} and result.C == C and result.solver == solver
    for k in shots:
        runs = result.runs[k]
        assert [r["seed"] for r in runs] == seeds
        for run in runs:
            chosen, _ = k_shot_indices(np.arange(1200), y[:1200], k, run["seed"])
            assert run["train_samples"] == len(chosen) == 10 * k
            ref = _reference(x[chosen], y[chosen], *test, C)
            for name in ("acc1", "acc5", "mean_per_class_recall"):
                if solver == "sklearn":  # the same fit: the same predictions, metrics up to float32 sums
                    assert run["metrics"][name] == pytest.approx(ref[name], abs=1e-6), name
                else:  # scikit-learn's objective, stopped by the same rule: within a few test samples
                    assert run["metrics"][name] == pytest.approx(ref[name], abs=3 / len(test[1])), name
            if solver == "sklearn":
                assert run["n_iter"] == ref["n_iter"] and run["converged"]
            assert run["seconds"] > 0
        mean, std = result.summary(k)
        acc = [r["metrics"]["acc1"] for r in runs]
        assert mean["acc1"] == pytest.approx(np.mean(acc)) and std["acc1"] == pytest.approx(
            np.std(acc, ddof=1)
        )
    metrics = result.metrics("mean_per_class_recall")
    assert set(metrics) == {f"lp_fewshot_{k}_{m}" for k in shots for m in ("acc1", "mean_per_class_recall")}
    assert metrics["lp_fewshot_8_acc1"] == result.summary(8)[0]["acc1"]
    assert set(result.metrics()) == {"lp_fewshot_2_acc1", "lp_fewshot_8_acc1"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"shots": []}, "shots must be a non-empty list of integers"),
        ({"shots": 4}, "shots must be a non-empty list of integers"),
        ({"shots": [1, 0]}, "shots must be integers >= 1, got 0"),
        ({"shots": [1, 2.5]}, "shots must be integers >= 1, got 2.5"),
        ({"shots": [4, 1, 4]}, r"shots lists \[4\] more than once"),
        ({"shots": [1], "seeds": []}, "seeds must be a non-empty list of integers"),
        ({"shots": [1], "seeds": [0, -1]}, "seeds must be integers >= 0, got -1"),
        ({"shots": [1], "seeds": [0, 1, 0]}, r"seeds lists \[0\] more than once"),
    ],
)
def test_bad_shots_or_seeds_are_one_clear_message(args: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LinearProbe(C=1.0, **args)


FEW_SHOT = ["--trainer.callbacks.init_args.shots=[1, 4]", "--trainer.callbacks.init_args.seeds=[0, 1]"]


def test_a_cli_run_writes_few_shot_results_scalars_and_a_figure(
    tiny: Path, cli: Cli, caplog: pytest.LogCaptureFixture
) -> None:
    code, _, err = cli("test", *conf(probe={"C": 0.316, "max_iter": 100}), *FEW_SHOT)
    assert code == 0, err[-3000:]
    res = results(tiny)
    few = res["linear_probe"]["few_shot"]
    assert (
        few["shots"] == [1, 4] and few["seeds"] == [0, 1] and few["C"] == 0.316 and few["C_from"] == "given"
    )
    assert few["solver"] == res["linear_probe"]["solver"] == "torch" and few["seconds"] > 0
    assert res["linear_probe"]["warm_start"] is True  # the torch search's default
    for k in (1, 4):
        entry = few["per_k"][str(k)]
        assert set(entry) == {"mean", "std", "short_classes", "runs"} and entry["short_classes"] == []
        assert set(entry["mean"]) == set(entry["std"]) == {"acc1", "acc5", "mean_per_class_recall"}
        assert [r["seed"] for r in entry["runs"]] == [0, 1]
        for run in entry["runs"]:
            assert run["train_samples"] == 10 * k and 0 <= run["n_iter"] <= 100 and run["seconds"] > 0
            assert set(run) == {"seed", "train_samples", "metrics", "n_iter", "converged", "seconds"}
        acc = [r["metrics"]["acc1"] for r in entry["runs"]]
        assert res["metrics"][f"lp_fewshot_{k}_acc1"] == pytest.approx(np.mean(acc))
        assert 0.0 <= res["metrics"][f"lp_fewshot_{k}_acc1"] <= 1.0
    assert "4-shot test top-1" in caplog.text
    run = tiny / "runs" / "t" / "version_0"
    assert (run / "linear_probe_few_shot.png").is_file()
    (events,) = run.glob("events.out.tfevents.*")
    logged = events.read_bytes()
    assert b"test/lp_fewshot_4_acc1" in logged and b"test/linear_probe_few_shot" in logged


@pytest.mark.ddp
@pytest.mark.slow
def test_two_processes_give_one_process_c_and_few_shot_results(tiny: Path, cli: Cli) -> None:
    """2 processes equal 1 process bit for bit, whether rank 0 fits the gathered features or each
    process fits its own drawn rows (the sums' grouping, probe/rowsums.py, makes the all-reduced
    loss and gradient one process's). (C is given: the search's own DDP equality is in test_cli.)"""
    probe = {"C": 0.316, "max_iter": 100}
    code, _, err = cli("test", *conf(probe=probe), *FEW_SHOT)
    assert code == 0, err[-3000:]
    ddp = ["--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu"]
    for sharded in (False, True):
        config = conf(probe={**probe, "shard_features": sharded})
        proc = run_cli("test", *config, *FEW_SHOT, *ddp, cwd=tiny)
        assert proc.returncode == 0, proc.stderr[-3000:]
    one, two, shards = (results(tiny, v) for v in range(3))
    assert two["world_size"] == shards["world_size"] == 2
    assert one["linear_probe"]["C"] == two["linear_probe"]["C"] == shards["linear_probe"]["C"]
    assert one["metrics"] == two["metrics"] == shards["metrics"]
    assert one["linear_probe"]["few_shot"]["C"] == one["linear_probe"]["C"] == 0.316
    drop = {"seconds"}

    def without_times(few: dict) -> str:
        for entry in few["per_k"].values():
            entry["runs"] = [{k: v for k, v in r.items() if k not in drop} for r in entry["runs"]]
        return json.dumps({k: v for k, v in few.items() if k not in drop}, sort_keys=True)

    expected = without_times(one["linear_probe"]["few_shot"])
    assert without_times(two["linear_probe"]["few_shot"]) == expected
    assert without_times(shards["linear_probe"]["few_shot"]) == expected
