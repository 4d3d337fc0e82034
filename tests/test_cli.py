"""The ``clip-lightning`` command, driven by the small configs in ``tests/conf/``.

Runs are in-process where Lightning allows; DDP runs, whose launcher re-runs the command, are
subprocesses.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tests.helpers import TINY_VIT, make_image_folder, random_state_dict, write_bad_image

ROOT = Path(__file__).resolve().parents[1]
CONF = Path(__file__).resolve().parent / "conf"
Cli = Callable[..., tuple[int, str, str]]


def conf(probe: dict | None = None, **data: object) -> list[str]:
    """Arguments that read ``tests/conf/zeroshot.yaml`` (+ ``probe.yaml``) with these overrides."""
    args = ["--config", str(CONF / "zeroshot.yaml")]
    if probe is not None:
        args += ["--config", str(CONF / "probe.yaml")]
        args += [
            f"--trainer.callbacks.init_args.{k}={yaml.safe_dump(v).splitlines()[0]}" for k, v in probe.items()
        ]
    return args + [f"--data.{k}={v}" for k, v in data.items()]


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
    """The test's folder (its cwd) with ``tiny.pt``, the checkpoint the configs name."""
    torch.save(random_state_dict(TINY_VIT, seed=3), tmp_path / "tiny.pt")
    return tmp_path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def results(workdir: Path, version: int = 0) -> dict:
    return json.loads((workdir / "runs" / "t" / f"version_{version}" / "results.json").read_text())


def test_cli_end_to_end_writes_results_tensorboard_and_figures(workdir: Path, cli: Cli) -> None:
    code, out, err = cli("test", *conf())
    assert code == 0, err[-3000:]
    res = results(workdir)
    assert res["dataset"] == "digits" and res["task"] == "zeroshot_classification"
    assert set(res["metrics"]) == {"acc1", "acc5", "mean_per_class_recall"}
    assert all(0.0 <= v <= 1.0 for v in res["metrics"].values())
    assert res["classnames"] == [str(i) for i in range(10)]
    assert res["templates"] == ['a photo of the number: "{}".']
    assert res["num_test_samples"] == 359
    # a user's own file is named as such, not "openai"
    assert res["pretrained"] == res["checkpoint_source"] and res["pretrained"].endswith("tiny.pt")
    assert res["checkpoint_format"] == "state_dict" and res["checkpoint"].startswith("sha256:")
    run = workdir / "runs" / "t" / "version_0"
    assert list(run.glob("events.out.tfevents.*"))
    assert (run / "test_confusion_matrix.png").is_file() and (run / "test_per_class_accuracy.png").is_file()
    assert "acc1" in out
    assert "Test metric" not in out  # Lightning's per-dataloader table is off by default


def test_print_config(workdir: Path, cli: Cli) -> None:
    code, out, err = cli("test", *conf(), "--print_config")
    assert code == 0, err[-2000:]
    printed = yaml.safe_load(out)
    # Subclass mode: the defaults are CLIPEvaluator and CLIPDataModule, the old keys their init_args.
    assert printed["model"]["class_path"] == "clip_lightning.CLIPEvaluator"
    assert printed["data"]["class_path"] == "clip_lightning.CLIPDataModule"
    data, model = printed["data"]["init_args"], printed["model"]["init_args"]
    assert data["dataset"] == "digits" and model["name"].endswith("tiny.pt")
    assert printed["verbose"] is False
    assert printed["trainer"]["logger"]["init_args"]["save_dir"] == "runs"  # the shared trainer block
    code, out, _ = cli("test", *conf(), "--verbose", "true", "--print_config")
    assert yaml.safe_load(out)["verbose"] is True


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
        (["--model.templates", '["a photo of a {style} {}"]'], "uses {style}; the only placeholder is {}"),
        (["--model.templates", '["a photo"]'], "has no '{}' placeholder"),
        (["--trainer.logger.init_args.save_dir", "tiny.pt/runs"], "cannot write the run's logs and results"),
    ],
    ids=[
        "dataset",
        "root",
        "classnames",
        "model",
        "checkpoint with random weights",
        "template with another placeholder",
        "template without placeholder",
        "unwritable output",
    ],
)
def test_user_errors_are_one_clear_message(workdir: Path, cli: Cli, args: list[str], message: str) -> None:
    code, _, err = cli("test", *conf(), *args)  # any other exception would fail the test here
    assert code == 2
    assert message in err


def test_unreadable_images_stop_the_run_or_are_skipped_and_listed(workdir: Path, cli: Cli) -> None:
    root = make_image_folder(workdir / "folder", ["a", "b"], {"test": 3})
    bad = write_bad_image(root / "test" / "b" / "9.png", "truncated")
    args = conf(dataset="imagefolder", root=str(root), batch_size=4)
    code, _, err = cli("test", *args)
    assert code == 2 and str(bad) in err and "--data.skip_bad_images true" in err
    code, _, err = cli("test", *args, "--data.skip_bad_images", "true")
    assert code == 0, err[-3000:]
    (path,) = (workdir / "runs" / "t").glob("version_*/results.json")
    res = json.loads(path.read_text())
    assert res["skipped_images"] == [{"split": "test", "path": str(bad)}] and res["num_test_samples"] == 6


@pytest.mark.parametrize("devices", [1, pytest.param(2, marks=pytest.mark.ddp)])
def test_probe_on_a_class_ordered_split_cut_short_is_one_clear_message(
    workdir: Path, cli: Cli, devices: int
) -> None:
    """With 2 processes, rank 0 finds the problem and the other must stop with the same message
    (not die on a closed connection, or wait)."""
    root = make_image_folder(workdir / "folder", ["a", "b", "c"], {"train": 6, "test": 2})
    config = conf(probe={"C": 0.316}, dataset="imagefolder", root=str(root), batch_size=2)
    # 2 batches per process: with 1 process train holds "a", test "a" and "b"; with 2, "a" "b" / "c"
    args = [
        "--trainer.limit_test_batches",
        "2",
        "--trainer.devices",
        str(devices),
        "--trainer.strategy",
        "ddp",
    ]
    if devices == 1:
        code, _, err = cli("test", *config, *args)
    else:
        proc = run_cli("test", *config, *args, cwd=workdir)
        code, err = proc.returncode, proc.stderr
        assert "Traceback" not in err
    assert code == 2
    assert err.count("test features hold 1 class that its train features lack") == devices
    assert "--trainer.limit_test_batches" in err


def test_offline_download_is_one_clear_message(
    workdir: Path, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLIP_LIGHTNING_BASE_URL", "http://127.0.0.1:9")
    args = ["--model.name", "RN50", "--model.download_root", str(tmp_path / "cache")]
    code, _, err = cli("test", *conf(), *args)
    assert code == 2
    assert "Could not download http://127.0.0.1:9/" in err


@pytest.mark.parametrize("devices", [1, pytest.param(2, marks=pytest.mark.ddp)])
def test_failed_dataset_download_is_one_clear_message(
    workdir: Path, cli: Cli, devices: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the first process downloads (``prepare_data``); with 2 processes the other must stop
    with the same message, not die at the next barrier on a closed connection."""
    offline = "http://127.0.0.1:9/cifar-10-python.tar.gz"  # nothing listens: as offline
    args = ["--data.dataset", "cifar10", "--data.root", str(workdir / "data"), "--data.download", "true"]
    ddp = ["--trainer.devices", str(devices), "--trainer.strategy", "ddp"]
    if devices == 1:
        from torchvision.datasets import CIFAR10

        monkeypatch.setattr(CIFAR10, "url", offline)
        code, _, err = cli("test", *conf(), *args, *ddp)
    else:
        launcher = workdir / "offline.py"  # a script, so Lightning's DDP launcher re-runs it for rank 1
        launcher.write_text(
            "from torchvision.datasets import CIFAR10\n"
            f"CIFAR10.url = {offline!r}\n"
            "from clip_lightning.cli import main\n"
            "main()\n"
        )
        proc = run_cli("test", *conf(), *args, *ddp, cwd=workdir, script=launcher)
        code, err = proc.returncode, proc.stderr
        assert "Traceback" not in err
    assert code == 2, err[-3000:]
    assert err.count("clip-lightning: error: cifar10 (train) could not be downloaded") == devices
    assert "--data.download false" in err


@pytest.mark.shared
def test_zero_shot_on_mnist_from_its_original_test_files(workdir: Path, cli: Cli, shared_data: Path) -> None:
    """The original t10k files alone (no train files, no torchvision layout) serve a test run."""
    root = shared_data / "mnist-test"
    config = conf(dataset="mnist", root=str(root), batch_size=100)
    code, _, err = cli("test", *config, "--trainer.limit_test_batches", "3")
    assert code == 0, err[-3000:]
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
def test_two_process_ddp_equals_one_process(workdir: Path, cli: Cli) -> None:
    """Odd test split (359), odd train/val: padding repeats samples; results must not change."""
    single, double = workdir / "cache1", workdir / "cache2"
    code, _, err = cli("test", *conf(probe={"C": None, "cache_dir": str(single), "max_iter": 200}))
    assert code == 0, err[-3000:]
    ddp = ["--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu"]
    config = conf(probe={"C": None, "cache_dir": str(double), "max_iter": 200})
    proc = run_cli("test", *config, *ddp, cwd=workdir)
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


def test_predict_writes_what_trainer_predict_returns(workdir: Path, cli: Cli) -> None:
    import lightning as L

    from clip_lightning import CLIPDataModule, CLIPEvaluator

    code, out, err = cli("predict", *conf())
    assert code == 0, err[-3000:]
    written = predictions(workdir, 0)
    assert "predictions: 359 images (label, features, logits)" in out

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
def test_predict_with_two_processes_writes_each_image_once(workdir: Path, cli: Cli) -> None:
    """359 test images: the sampler pads one process with a repeat, which the file must not hold.
    Batches of 44 leave last batches of 7 (one process) and 4 rows (each of two), and the two
    processes run one thread each: the logits must not depend on either. Both processes destroy
    the gloo group before the interpreter's finalization, which aborts now and then otherwise."""
    config = conf(batch_size=44)
    code, _, err = cli("predict", *config)
    assert code == 0, err[-3000:]
    ddp = ["--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu"]
    launcher = workdir / "launcher.py"  # a script, so Lightning's DDP launcher re-runs it for rank 1
    launcher.write_text(  # registered first, so it runs after every other exit handler
        "import atexit, torch.distributed as dist\n"
        "atexit.register(lambda: print(f'group alive at exit: {dist.is_initialized()}', flush=True))\n"
        "from clip_lightning.cli import main\n"
        "main()\n"
    )
    proc = run_cli("predict", *config, *ddp, cwd=workdir, script=launcher)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("group alive at exit: False") == 2, proc.stdout[-2000:]
    assert proc.stdout.count("predictions: 359 images") == 1  # written and reported by rank 0 only
    one, two = predictions(workdir, 0), predictions(workdir, 1)
    assert set(one) == set(two) == {"index", "label", "features", "logits", "classnames"}
    for key in one:
        np.testing.assert_array_equal(one[key], two[key])


@pytest.mark.ddp
def test_torchrun_two_processes_equal_one_process(workdir: Path, cli: Cli) -> None:
    config = conf()
    assert cli("test", *config)[0] == 0
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
         "--master_port", str(free_port()), "-m", "clip_lightning", "test", *config,
         "--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"],
        cwd=workdir, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert results(workdir, 1)["world_size"] == 2
    assert results(workdir, 0)["metrics"] == results(workdir, 1)["metrics"]


@pytest.mark.parametrize("config", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_configs_parse(config: Path, cli: Cli) -> None:
    code, out, err = cli("test", "--config", str(config), "--print_config")
    assert code == 0, err[-2000:]
    printed = yaml.safe_load(out)
    assert printed["data"]["init_args"]["dataset"] and printed["trainer"]["accelerator"] == "auto"
