from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from clip_lightning.errors import ConfigError
from clip_lightning.reporting import (
    RunLogger,
    check_writable,
    log_figures,
    log_probe_search,
    print_summary,
    write_predictions,
    write_results,
)


class FigureSink:
    """A logger's ``experiment`` that records the figures it is sent (as TensorBoard's would draw them)."""

    def __init__(self) -> None:
        self.tags: list[str] = []

    def add_figure(self, tag: str, figure: Any, close: bool = True) -> None:
        self.tags.append(tag)


def test_results_and_predictions_are_written_whole(tmp_path: Path) -> None:
    path = write_results(str(tmp_path / "run"), {"dataset": "digits", "metrics": {"acc1": 0.5}})
    assert json.loads(Path(path).read_text()) == {"dataset": "digits", "metrics": {"acc1": 0.5}}
    values = {"label": torch.tensor([1, 0]), "logits": torch.randn(2, 3, dtype=torch.bfloat16)}
    path = write_predictions(str(tmp_path / "run"), values, torch.tensor([0, 1]), ["a", "b", "c"])
    with np.load(path) as data:
        assert data["logits"].dtype == np.float32 and list(data["classnames"]) == ["a", "b", "c"]
        np.testing.assert_array_equal(data["index"], [0, 1])
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["predictions.npz", "results.json"]


def test_summary_says_when_weights_are_random(capsys: pytest.CaptureFixture[str]) -> None:
    result = {"task": "zeroshot_classification", "model": "ViT-B/32", "pretrained": "random"}
    print_summary({**result, "dataset": "digits", "metrics": {"acc1": 0.125}}, "results.json")
    out = capsys.readouterr().out
    assert "RANDOM WEIGHTS" in out and "12.50 %" in out


def test_figures_go_to_the_logger_and_to_pngs(tmp_path: Path) -> None:
    sink = FigureSink()
    trainer: Any = SimpleNamespace(loggers=[SimpleNamespace(experiment=sink)])
    matrix = torch.tensor([[3, 1], [0, 4]])
    log_figures(trainer, str(tmp_path), matrix, ["cat", "dog"], "test")
    log_probe_search(trainer, str(tmp_path), {0.01: 0.5, 1.0: 0.75, 100.0: 0.7}, 1.0)
    assert sink.tags == ["test/confusion_matrix", "test/per_class_accuracy", "test/linear_probe_search"]
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert pngs == ["linear_probe_search.png", "test_confusion_matrix.png", "test_per_class_accuracy.png"]


def test_runs_started_together_get_their_own_folders(tmp_path: Path) -> None:
    """Two loggers that pick a version before either has written anything (two runs started
    together): Lightning's own logger gives both version_0; ours claims each folder as it picks it."""
    first, second = RunLogger(str(tmp_path), name="t"), RunLogger(str(tmp_path), name="t")
    assert (first.version, second.version) == (0, 1)
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["version_0", "version_1"]
    assert RunLogger(str(tmp_path), name="t", version=7).version == 7  # an explicit version is kept


def test_results_have_ordinary_file_modes(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        path = write_results(str(tmp_path), {"metrics": {}})
    finally:
        os.umask(umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temporary file left


def test_an_unwritable_folder_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")  # unwritable even for root, unlike chmod
    with pytest.raises(ConfigError, match=r"cannot write the results to .*file/runs.*pass --out"):
        check_writable(str(tmp_path / "file" / "runs"), "the results", "--out")


def test_a_second_run_in_a_folder_another_run_writes_to_is_refused_before_any_work(
    tmp_path: Path, cli: Callable[..., tuple[int, str, str]]
) -> None:
    """Without a logger, runs share default_root_dir: a concurrent second run would overwrite the
    first one's results.json. Runs one after another are fine (the claim ends with the run)."""
    from clip_lightning.reporting import FolderClaim
    from tests.helpers import TINY_VIT, random_state_dict
    from tests.test_cli import conf

    torch.save(random_state_dict(TINY_VIT, seed=3), tmp_path / "tiny.pt")
    args = ["test", *conf(), "--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path / "out")]
    (tmp_path / "out").mkdir()
    other = FolderClaim(str(tmp_path / "out"))  # another run, busy there
    code, _, err = cli(*args)
    assert code == 2 and "another run is writing its results to" in err
    assert not (tmp_path / "out" / "results.json").exists()
    other.release()
    for _ in range(2):
        code, _, err = cli(*args)
        assert code == 0, err[-3000:]
    assert (tmp_path / "out" / "results.json").is_file()
