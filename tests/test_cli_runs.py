"""Runs of the ``clip-lightning`` command that bad data or a shared folder must not spoil (issue 22):
an image found unreadable mid-run under DDP, two runs logging to one folder, a batch limit."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
import yaml

from clip_lightning.datasets import image_problem
from tests.helpers import TINY_VIT, make_image_folder, random_state_dict, write_bad_image
from tests.test_cli import Cli, conf, run_cli

DDP = ["--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu"]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """The test's folder (its cwd) with ``tiny.pt``, the checkpoint the configs name."""
    torch.save(random_state_dict(TINY_VIT, seed=3), tmp_path / "tiny.pt")
    return tmp_path


@pytest.mark.ddp
def test_images_unreadable_mid_run_under_ddp_stop_every_process_at_once(workdir: Path) -> None:
    """Truncated PNGs pass the header check and are found only when one process decodes them; that
    process must not raise alone (the other died with a traceback on the closed connection under
    gloo, and under NCCL would wait until the process group's timeout, 30 minutes): every process
    stops with one message naming both files and their splits."""
    root = make_image_folder(workdir / "folder", ["a", "b"], {"train": 3, "test": 3})
    in_train = write_bad_image(root / "train" / "a" / "8.png", "truncated")
    in_test = write_bad_image(root / "test" / "b" / "9.png", "truncated")
    assert image_problem(str(in_test), decode=False) is None  # only decoding finds them
    # The probe's callback reads the train features before the task's own epoch end: both paths.
    config = conf(probe={"C": 0.316}, dataset="imagefolder", root=str(root), batch_size=2)
    start = time.monotonic()
    proc = run_cli("test", *config, *DDP, cwd=workdir, timeout=300)  # a hang fails here
    seconds = time.monotonic() - start
    err = proc.stderr
    assert proc.returncode == 2, err[-3000:]
    assert "Traceback" not in err
    assert err.count("clip-lightning: error: 2 images could not be read:") == 2  # on each process
    assert (
        err.count(f"cannot read image {in_train} of the train split (OSError: image file is truncated") == 2
    )
    assert err.count(f"cannot read image {in_test} of the test split (OSError: image file is truncated") == 2
    assert not list(workdir.glob("runs/t/version_*/results.json"))  # no numbers from a run that lost images
    print(f"DDP run with unreadable images stopped after {seconds:.1f} s")


@pytest.mark.parametrize(
    ("command", "probe", "split"),
    [("test", None, "test"), ("test", {"C": 0.316}, "train"), ("predict", None, "test")],
    ids=["zero-shot", "probe", "predict"],
)
def test_a_marked_image_is_never_scored(
    workdir: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch, command: str, probe: dict | None, split: str
) -> None:
    """The task's side in one process: the data marks unreadable images as it does under DDP, and
    the run stops with the file named before any metric, results.json or predictions.npz."""
    monkeypatch.setattr("clip_lightning.datamodule.in_process_group", lambda: True)
    root = make_image_folder(workdir / "folder", ["a", "b"], {"train": 3, "test": 3})
    bad = write_bad_image(root / split / "a" / "5.png", "truncated")
    code, _, err = cli(command, *conf(probe=probe, dataset="imagefolder", root=str(root), batch_size=4))
    assert code == 2
    assert f"error: cannot read image {bad} of the {split} split (OSError: image file is truncated" in err
    assert not [p.name for p in (workdir / "runs").rglob("*") if p.suffix in (".json", ".npz")]


def test_a_plain_tensorboard_logger_gets_folders_claimed_atomically(
    workdir: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lightning's TensorBoardLogger picks its version by listing the folder: two runs started
    together both see no ``version_0`` and share it. Listing is made to answer 0 for both runs here,
    as it does for two racing runs; each must still get its own folder and results.json."""
    from lightning.pytorch.loggers import TensorBoardLogger

    monkeypatch.setattr(TensorBoardLogger, "_get_next_version", lambda self: 0)
    logger = [
        "--trainer.logger",
        "lightning.pytorch.loggers.TensorBoardLogger",
        "--trainer.logger.init_args.save_dir",
        "runs",
        "--trainer.logger.init_args.name",
        "t",
    ]
    first = cli("test", *conf(), *logger)
    second = cli("test", *conf(), *logger, "--data.batch_size", "32")
    for code, _, err in (first, second):
        assert code == 0, err[-3000:]
        assert "claims its version folder atomically" in err  # the swap is said, not silent
    runs = sorted((workdir / "runs" / "t").glob("version_*"))
    assert [r.name for r in runs] == ["version_0", "version_1"]
    saved = [yaml.safe_load((r / "config.yaml").read_text()) for r in runs]
    assert [s["data"]["init_args"]["batch_size"] for s in saved] == [64, 32]  # neither overwrote the other
    assert all(s["trainer"]["logger"]["class_path"] == "clip_lightning.reporting.RunLogger" for s in saved)
    assert all(json.loads((r / "results.json").read_text())["num_test_samples"] == 359 for r in runs)


def test_limit_test_batches_one_is_one_batch(workdir: Path) -> None:
    """jsonargparse reads ``1`` as the int 1, which Lightning takes as one batch (1.0 would be all).

    Run as users run it, in a fresh process: the Trainer's ``Optional[Union[int, float]]`` is
    ``Union[float, int, None]`` in a process that imported ``sklearn.datasets`` before Lightning
    (typing caches equal Unions: whichever order was made first), and then ``1`` parses as 1.0.
    ``clip_lightning.cli`` imports Lightning first."""
    proc = run_cli("test", *conf(), "--trainer.limit_test_batches", "1", cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((workdir / "runs" / "t" / "version_0" / "results.json").read_text())
    assert res["num_test_samples"] == 64  # the batch size of tests/conf/zeroshot.yaml
