from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from .helpers import TINY_VIT, make_image_folder, random_state_dict

ROOT = Path(__file__).resolve().parents[1]


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: int = 600, script: Path | None = None
) -> subprocess.CompletedProcess:
    """``python -m clip_lightning ARGS``, or ``python SCRIPT ARGS`` for a script that calls ``main()``."""
    command = [str(script)] if script is not None else ["-m", "clip_lightning"]
    return subprocess.run(
        [sys.executable, *command, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})},
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    torch.save(random_state_dict(TINY_VIT, seed=3), tmp_path / "tiny.pt")
    return tmp_path


def write_config(workdir: Path, probe: dict | None = None, **data: object) -> Path:
    config = {
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "enable_progress_bar": False,
            "logger": {
                "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                "init_args": {"save_dir": str(workdir / "runs"), "name": "t"},
            },
        },
        "model": {"name": str(workdir / "tiny.pt")},
        "data": {"dataset": "digits", "batch_size": 64, "num_workers": 0, **data},
    }
    if probe is not None:
        config["trainer"]["callbacks"] = [{"class_path": "clip_lightning.LinearProbe", "init_args": probe}]
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def results(workdir: Path, version: int = 0) -> dict:
    return json.loads((workdir / "runs" / "t" / f"version_{version}" / "results.json").read_text())


def test_cli_end_to_end_writes_results_tensorboard_and_figures(workdir: Path) -> None:
    proc = run_cli("test", "--config", str(write_config(workdir)), cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = results(workdir)
    assert res["dataset"] == "digits" and res["task"] == "zeroshot_classification"
    assert set(res["metrics"]) == {"acc1", "acc5", "mean_per_class_recall"}
    assert all(0.0 <= v <= 1.0 for v in res["metrics"].values())
    assert res["classnames"] == [str(i) for i in range(10)]
    assert res["templates"] == ['a photo of the number: "{}".']
    assert res["num_test_samples"] == 359
    run = workdir / "runs" / "t" / "version_0"
    assert list(run.glob("events.out.tfevents.*"))
    assert (run / "test_confusion_matrix.png").is_file() and (run / "test_per_class_accuracy.png").is_file()
    assert "acc1" in proc.stdout
    assert "Test metric" not in proc.stdout  # Lightning's per-dataloader table is off by default


def test_print_config(workdir: Path) -> None:
    proc = run_cli("test", "--config", str(write_config(workdir)), "--print_config", cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-2000:]
    printed = yaml.safe_load(proc.stdout)
    assert printed["data"]["dataset"] == "digits" and printed["model"]["name"].endswith("tiny.pt")
    assert printed["verbose"] is False
    proc = run_cli(
        "test", "--config", str(write_config(workdir)), "--verbose", "true", "--print_config", cwd=workdir
    )
    assert yaml.safe_load(proc.stdout)["verbose"] is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data.dataset", "cifar11"], "unknown dataset 'cifar11'"),
        (["--data.dataset", "imagefolder", "--data.root", "/no/such/dir"], "--data.root"),
        (["--data.classnames", "[a, b, c]"], "3 class names for 10 classes"),
        (["--model.name", "ViT-B/33"], "Did you mean 'ViT-B/32'"),
        (
            ["--model.name", "/ckpt.pt", "--model.pretrained", "false"],
            "pass pretrained=True (--model.pretrained true)",
        ),
    ],
    ids=["dataset", "root", "classnames", "model", "checkpoint with random weights"],
)
def test_user_errors_are_one_clear_message(workdir: Path, args: list[str], message: str) -> None:
    proc = run_cli("test", "--config", str(write_config(workdir)), *args, cwd=workdir)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("devices", [1, pytest.param(2, marks=pytest.mark.ddp)])
def test_probe_on_a_class_ordered_split_cut_short_is_one_clear_message(workdir: Path, devices: int) -> None:
    """With 2 processes, rank 0 finds the problem and the other must stop with the same message
    (not die on a closed connection, or wait)."""
    root = make_image_folder(workdir / "folder", ["a", "b", "c"], {"train": 6, "test": 2})
    config = write_config(workdir, probe={"C": 0.316}, dataset="imagefolder", root=str(root), batch_size=2)
    # 2 batches per process: with 1 process train holds "a", test "a" and "b"; with 2, "a" "b" / "c"
    args = [
        "--trainer.limit_test_batches",
        "2",
        "--trainer.devices",
        str(devices),
        "--trainer.strategy",
        "ddp",
    ]
    proc = run_cli("test", "--config", str(config), *args, cwd=workdir)
    assert proc.returncode == 2
    assert proc.stderr.count("test features hold 1 class that its train features lack") == devices
    assert "--trainer.limit_test_batches" in proc.stderr and "Traceback" not in proc.stderr


def test_offline_download_is_one_clear_message(workdir: Path, tmp_path: Path) -> None:
    env = {"CLIP_LIGHTNING_BASE_URL": "http://127.0.0.1:9"}
    args = ["--model.name", "RN50", "--model.download_root", str(tmp_path / "cache")]
    proc = run_cli("test", "--config", str(write_config(workdir)), *args, cwd=workdir, env=env)
    assert proc.returncode == 2
    assert "Could not download http://127.0.0.1:9/" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("devices", [1, pytest.param(2, marks=pytest.mark.ddp)])
def test_failed_dataset_download_is_one_clear_message(workdir: Path, devices: int) -> None:
    """Only the first process downloads (``prepare_data``); with 2 processes the other must stop
    with the same message, not die at the next barrier on a closed connection."""
    launcher = workdir / "offline.py"  # a script, so Lightning's DDP launcher re-runs it for rank 1
    launcher.write_text(
        "from torchvision.datasets import CIFAR10\n"
        "CIFAR10.url = 'http://127.0.0.1:9/cifar-10-python.tar.gz'  # nothing listens: as offline\n"
        "from clip_lightning.cli import main\n"
        "main()\n"
    )
    args = ["--data.dataset", "cifar10", "--data.root", str(workdir / "data"), "--data.download", "true"]
    ddp = ["--trainer.devices", str(devices), "--trainer.strategy", "ddp"]
    proc = run_cli("test", "--config", str(write_config(workdir)), *args, *ddp, cwd=workdir, script=launcher)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.count("clip-lightning: error: cifar10 (train) could not be downloaded") == devices
    assert "--data.download false" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.shared
def test_zero_shot_on_mnist_from_its_original_test_files(workdir: Path, shared_data: Path) -> None:
    """The original t10k files alone (no train files, no torchvision layout) serve a test run."""
    root = shared_data / "mnist-test"
    config = write_config(workdir, dataset="mnist", root=str(root), batch_size=100)
    proc = run_cli("test", "--config", str(config), "--trainer.limit_test_batches", "3", cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = results(workdir)
    assert res["dataset"] == "mnist" and res["num_test_samples"] == 300
    assert res["classnames"] == [str(i) for i in range(10)]
    assert res["templates"] == ['a photo of the number: "{}".']


def _features(cache: Path) -> dict[str, np.ndarray]:
    out = {}
    for file in sorted(cache.glob("*.npz")):
        with np.load(file) as data:
            out[json.loads(str(data["key"]))["split"]] = data["features"]
    return out


@pytest.mark.ddp
def test_two_process_ddp_equals_one_process(workdir: Path) -> None:
    """Odd test split (359), odd train/val: padding repeats samples; results must not change."""
    single, double = workdir / "cache1", workdir / "cache2"
    config = write_config(workdir, probe={"C": None, "cache_dir": str(single), "max_iter": 200})
    proc = run_cli("test", "--config", str(config), cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = ["--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu"]
    config = write_config(workdir, probe={"C": None, "cache_dir": str(double), "max_iter": 200})
    proc = run_cli("test", "--config", str(config), *ddp, cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one, two = results(workdir, 0), results(workdir, 1)
    assert two["world_size"] == 2 and one["world_size"] == 1
    assert one["metrics"] == two["metrics"]
    assert one["linear_probe"]["C"] == two["linear_probe"]["C"]
    f1, f2 = _features(single), _features(double)
    assert set(f1) == set(f2) == {"train", "val"}
    for split in f1:
        np.testing.assert_array_equal(f1[split], f2[split])


def predictions(workdir: Path, version: int) -> dict[str, np.ndarray]:
    with np.load(workdir / "runs" / "t" / f"version_{version}" / "predictions.npz") as data:
        return {k: data[k] for k in data.files}


def test_predict_writes_what_trainer_predict_returns(workdir: Path) -> None:
    import lightning as L

    from clip_lightning import CLIPDataModule, CLIPEvaluator

    proc = run_cli("predict", "--config", str(write_config(workdir)), cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    written = predictions(workdir, 0)
    assert "predictions: 359 images (label, features, logits)" in proc.stdout

    evaluator = CLIPEvaluator(name=str(workdir / "tiny.pt"))
    dm = CLIPDataModule("digits", batch_size=64, num_workers=0, transform=evaluator.preprocess)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, default_root_dir=workdir)
    batches = trainer.predict(evaluator, dm)
    assert batches is not None
    for key in ("index", "label", "features", "logits"):
        expected = torch.cat([b[key] for b in batches]).numpy()  # type: ignore[call-overload]
        np.testing.assert_array_equal(written[key], expected)
    np.testing.assert_array_equal(written["index"], np.arange(359))
    assert written["features"].shape == (359, 32) and written["logits"].shape == (359, 10)
    assert list(written["classnames"]) == [str(i) for i in range(10)]


@pytest.mark.ddp
def test_predict_with_two_processes_writes_each_image_once(workdir: Path) -> None:
    """359 test images: the sampler pads one process with a repeat, which the file must not hold.
    Batches of 44 leave last batches of 7 (one process) and 4 rows (each of two), and the two
    processes run one thread each: the logits must not depend on either."""
    config = str(write_config(workdir, batch_size=44))
    proc = run_cli("predict", "--config", config, cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = ["--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu"]
    proc = run_cli("predict", "--config", config, *ddp, cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("predictions: 359 images") == 1  # written and reported by rank 0 only
    one, two = predictions(workdir, 0), predictions(workdir, 1)
    assert set(one) == set(two) == {"index", "label", "features", "logits", "classnames"}
    for key in one:
        np.testing.assert_array_equal(one[key], two[key])


@pytest.mark.ddp
def test_torchrun_two_processes_equal_one_process(workdir: Path) -> None:
    config = write_config(workdir)
    assert run_cli("test", "--config", str(config), cwd=workdir).returncode == 0
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
         "--master_port", str(free_port()), "-m", "clip_lightning", "test", "--config", str(config),
         "--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"],
        cwd=workdir, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert results(workdir, 1)["world_size"] == 2
    assert results(workdir, 0)["metrics"] == results(workdir, 1)["metrics"]


@pytest.mark.parametrize("config", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_configs_parse(config: Path, tmp_path: Path) -> None:
    proc = run_cli("test", "--config", str(config), "--print_config", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "dataset:" in proc.stdout
