"""``clip-lightning suite``: models x datasets, one CLIP_benchmark-named JSON per run, a table, resumable."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
import torch

from clip_lightning.suite import COLLECTIONS, expand_datasets, published
from clip_lightning.suite.collections import REFERENCE_COLUMNS
from clip_lightning.suite.plan import Run
from clip_lightning.suite.runner import Outcome
from clip_lightning.suite.table import rows
from tests.helpers import TINY_VIT, make_image_folder, random_state_dict
from tests.test_cli import Cli, conf

SHARED_CSV = (
    Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "openai_models_38_datasets.csv"
)
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.accelerator", "cpu", "--num_workers", "0"]


@pytest.fixture
def models(tmp_path: Path) -> list[str]:
    paths = []
    for seed, name in ((1, "a.pt"), (2, "b.pt")):
        torch.save(random_state_dict(TINY_VIT, seed=seed), tmp_path / name)
        paths.append(str(tmp_path / name))
    return paths


def sweep_args(models: list[str], folder: Path, *more: str) -> list[str]:
    roots = json.dumps({"imagefolder": str(folder)})
    return ["suite", "--models", *models, "--datasets", "digits", "imagefolder",
            "--data_roots", roots, "--output", "out", *QUIET, *more]  # fmt: skip


def named_folder_args(models: list[str], parent: Path) -> list[str]:
    """A folder of one's own, named in the table (``imagefolder/toy``), found by the root template."""
    return ["suite", "--models", *models, "--datasets", "digits", "imagefolder/toy",
            "--data_root", f"{parent}/{{name}}", "--output", "out", *QUIET]  # fmt: skip


def test_sweep_writes_a_json_per_run_and_the_table_and_a_rerun_skips_them(
    tmp_path: Path, models: list[str], cli: Cli
) -> None:
    make_image_folder(tmp_path / "toy", ["cat", "dog", "fish"], {"test": 4})
    code, out, err = cli(*named_folder_args(models, tmp_path))
    assert code == 0, err[-3000:]
    files = sorted(p.name for p in (tmp_path / "out").glob("*.json"))
    assert files == [
        f"{d}_{m}_{m}_en_zeroshot_classification.json"
        for d in ("digits", "imagefolder_toy")
        for m in ("a.pt", "b.pt")
    ]
    for name in files:
        result = json.loads((tmp_path / "out" / name).read_text())
        assert {"dataset", "model", "pretrained", "task", "metrics"} <= set(result)
        assert result["task"] == "zeroshot_classification"
        assert f"_{os.path.basename(result['pretrained'])}_" in name
    assert "run 1/4" in out and "run 4/4" in out
    # The same numbers as a run of `clip-lightning test` on the same pair.
    code, _, err = cli("test", *conf(), "--model.name", models[1])
    assert code == 0, err[-3000:]
    (single,) = (tmp_path / "runs" / "t").glob("version_*/results.json")
    swept = json.loads((tmp_path / "out" / "digits_b.pt_b.pt_en_zeroshot_classification.json").read_text())
    assert swept["metrics"] == json.loads(single.read_text())["metrics"]
    # The aggregate: a CSV row per run, a markdown table of models x datasets, a figure.
    with open(tmp_path / "out" / "suite.csv") as f:
        table = list(csv.DictReader(f))
    assert [(r["model"][-4:], r["dataset"]) for r in table] == [
        ("a.pt", "digits"), ("a.pt", "imagefolder/toy"), ("b.pt", "digits"), ("b.pt", "imagefolder/toy")
    ]  # fmt: skip
    assert float(table[2]["acc1"]) == swept["metrics"]["acc1"] and table[2]["main_metric"] == "acc1"
    markdown = (tmp_path / "out" / "suite.md").read_text()
    assert "| model | digits | imagefolder/toy | average |" in markdown
    assert f"| {models[1]} | {100 * swept['metrics']['acc1']:.1f} |" in markdown
    assert (tmp_path / "out" / "suite.png").stat().st_size > 0
    # A rerun (a killed sweep resumed) finds every result and runs nothing.
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("*.json")}
    code, out, err = cli(*named_folder_args(models, tmp_path))
    assert code == 0, err[-3000:]
    assert out.count("done before, skipped") == 4
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert (tmp_path / "out" / "suite.md").read_text() == markdown


def test_a_failing_dataset_is_in_the_table_and_the_sweep_goes_on(
    tmp_path: Path, models: list[str], cli: Cli
) -> None:
    code, out, _ = cli(*sweep_args(models[:1], tmp_path / "missing"))
    assert code == 1  # some run failed
    assert "run 2/2" in out and "FAILED" in out
    assert (tmp_path / "out" / "digits_a.pt_a.pt_en_zeroshot_classification.json").is_file()
    assert not list((tmp_path / "out").glob("imagefolder_*.json"))  # retried by the next sweep
    markdown = (tmp_path / "out" / "suite.md").read_text()
    assert "error: DatasetNotFoundError" in markdown and f"{tmp_path / 'missing'}/test" in markdown
    # the average says how many datasets it covers
    assert "(1 of 2)" in markdown


def test_probe_and_zero_shot_write_one_file_each(tmp_path: Path, models: list[str], cli: Cli) -> None:
    args = ["suite", "--models", models[0], "--datasets", "digits", "--output", "out", *QUIET,
            "--task", "zeroshot_classification", "linear_probe", "--probe", '{"C": 1.0, "max_iter": 50}']  # fmt: skip
    code, _, err = cli(*args)
    assert code == 0, err[-3000:]
    zeroshot = json.loads((tmp_path / "out" / "digits_a.pt_a.pt_en_zeroshot_classification.json").read_text())
    probe = json.loads((tmp_path / "out" / "digits_a.pt_a.pt_en_linear_probe.json").read_text())
    assert zeroshot["task"] == "zeroshot_classification" and set(zeroshot["metrics"]) >= {"acc1"}
    assert (
        probe["task"] == "linear_probe" and "lp_acc1" in probe["metrics"] and "acc1" not in probe["metrics"]
    )
    with open(tmp_path / "out" / "suite.csv") as f:
        assert [r["main_metric"] for r in csv.DictReader(f)] == ["acc1", "lp_acc1"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "retrieval"], "--task retrieval: choose from"),
        (["--data_root", "data/{set}"], "its only placeholders are"),
    ],
)
def test_bad_arguments_are_one_clear_message(
    args: list[str], message: str, models: list[str], cli: Cli
) -> None:
    code, _, err = cli("suite", "--models", models[0], "--datasets", "digits", *QUIET, *args)
    assert code == 2 and message in err


def test_collections() -> None:
    assert len(COLLECTIONS["clip_paper"]) == 27 and len(COLLECTIONS["datacomp"]) == 38
    assert expand_datasets(["cifar10", "clip_paper"])[:3] == ["cifar10", "food101", "cifar100"]
    assert {REFERENCE_COLUMNS[d] for d in COLLECTIONS["datacomp"]} == set(_csv_rows()[0]) - {
        "name", "pretrained", "Average perf. on 38 datasets"
    }  # fmt: skip


def _csv_rows() -> list[dict[str, str]]:
    from importlib import resources

    text = resources.files("clip_lightning.suite").joinpath("openai_models_38_datasets.csv").read_text()
    return list(csv.DictReader(text.splitlines()))


def test_published_numbers_are_the_shipped_table() -> None:
    rows_ = {r["name"]: r for r in _csv_rows()}
    assert published("ViT-B/32", "cifar10") == float(rows_["ViT-B-32"]["CIFAR-10"])
    assert published("ViT-B/32", "wds/vtab/cifar10") == float(rows_["ViT-B-32"]["CIFAR-10"])
    assert published("ViT-L/14@336px", "imagenet") == float(rows_["ViT-L-14-336"]["ImageNet 1k"])
    assert published("RN50", "flickr30k") == float(rows_["RN50"]["Flickr"])
    assert published("ViT-B/32", "digits") is None and published("my.pt", "cifar10") is None
    run = Run("ViT-B/32", "cifar10", "data", True, ("zeroshot_classification",))
    result = {"pretrained": "openai", "task": "zeroshot_classification", "metrics": {"acc1": 0.9}}
    (row,) = rows([Outcome(run, {"zeroshot_classification": result})])
    assert row["published"] == float(rows_["ViT-B-32"]["CIFAR-10"]) and row["value"] == 0.9


@pytest.mark.shared
def test_shipped_table_is_the_reference_file() -> None:
    from importlib import resources

    shipped = resources.files("clip_lightning.suite").joinpath("openai_models_38_datasets.csv").read_bytes()
    assert shipped == SHARED_CSV.read_bytes()
    assert os.path.basename(SHARED_CSV) == "openai_models_38_datasets.csv"


def test_shipped_suite_configs_parse() -> None:
    from clip_lightning.suite.cli import build_parser

    for path in sorted((Path(__file__).resolve().parents[2] / "configs" / "suites").glob("*.yaml")):
        cfg = build_parser().parse_args(["--config", str(path)])
        assert cfg.models and cfg.datasets and cfg.output, path


@pytest.mark.ddp
def test_a_sweep_on_two_processes_writes_what_one_process_writes(
    tmp_path: Path, models: list[str], cli: Cli
) -> None:
    """Lightning's launcher re-runs the command per process: every process walks the same runs,
    only the first writes, and the numbers equal one process's."""
    from tests.test_cli import run_cli

    make_image_folder(tmp_path / "toy", ["cat", "dog", "fish"], {"test": 5})
    args = named_folder_args(models, tmp_path)[1:]  # without "suite": run_cli adds the command
    code, _, err = cli("suite", *args)
    assert code == 0, err[-3000:]
    ddp = ["--trainer.devices", "2", "--trainer.strategy", "ddp", "--output", "out2"]
    proc = run_cli("suite", *args, *ddp, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("run 4/4") == 2  # announced once (by the first process), then done
    for one in sorted((tmp_path / "out").glob("*.json")):
        two = json.loads((tmp_path / "out2" / one.name).read_text())
        assert two["world_size"] == 2 and two["metrics"] == json.loads(one.read_text())["metrics"]
    assert (tmp_path / "out2" / "suite.md").is_file()


def test_retrieval_datasets_run_zero_shot_retrieval(tmp_path: Path, models: list[str], cli: Cli) -> None:
    from tests.datasets.caption_files import (
        class_captions,
        random_images,
        write_karpathy,
        write_retrieval_wds,
    )

    images = random_images(tmp_path / "images", 6)
    captions = [class_captions(f"thing {i}", 2, seed=i) for i in range(6)]
    write_karpathy(tmp_path / "flickr30k", images, captions)
    write_retrieval_wds(tmp_path / "wds_captions", images, captions, [4, 2])
    args = ["suite", "--models", models[0], "--datasets", "flickr30k", "wds/captions", "digits",
            "--data_root", f"{tmp_path}/{{dataset_cleaned}}", "--data_roots",
            json.dumps({"flickr30k": str(tmp_path / "flickr30k"), "wds/captions": str(tmp_path / "wds_captions")}),
            "--output", "out", *QUIET]  # fmt: skip
    code, _, err = cli(*args)
    assert code == 0, err[-3000:]
    karpathy = json.loads((tmp_path / "out" / "flickr30k_a.pt_a.pt_en_zeroshot_retrieval.json").read_text())
    webdataset = json.loads(
        (tmp_path / "out" / "wds_captions_a.pt_a.pt_en_zeroshot_retrieval.json").read_text()
    )
    assert karpathy["task"] == "zeroshot_retrieval" and "image_retrieval_recall@5" in karpathy["metrics"]
    assert webdataset["metrics"] == karpathy["metrics"]  # the same images and captions
    with open(tmp_path / "out" / "suite.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["task"] for r in table] == [
        "zeroshot_retrieval",
        "zeroshot_retrieval",
        "zeroshot_classification",
    ]
    mean = (
        karpathy["metrics"]["image_retrieval_recall@1"] + karpathy["metrics"]["text_retrieval_recall@1"]
    ) / 2
    assert table[0]["main_metric"] == "mean_recall@1" and float(table[0]["value"]) == pytest.approx(mean)
    assert "### zeroshot_retrieval" in (tmp_path / "out" / "suite.md").read_text()
