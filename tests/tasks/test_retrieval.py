"""Zero-shot retrieval: OpenAI's own code as the oracle, every input format, blocks and processes equal."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import tests.test_cli as cli_tests
from clip_lightning import CaptionDataModule, CLIPDataModule, RetrievalEvaluator
from clip_lightning.errors import ConfigError
from tests.datasets.caption_files import (
    class_captions,
    random_images,
    write_clip_benchmark,
    write_karpathy,
    write_retrieval_wds,
)
from tests.helpers import TINY_VIT, oracle_model, random_state_dict

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import clip as openai_clip
    from clip.clip import _transform as openai_transform

workdir = cli_tests.workdir  # the test's folder with tiny.pt, the configs' checkpoint
CONF = Path(__file__).resolve().parents[1] / "conf"


def _trainer(**kwargs: Any) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


def _run(checkpoint: Path, root: Path, dataset: str = "flickr30k", **task: Any) -> dict[str, float]:
    evaluator = RetrievalEvaluator(name=str(checkpoint), examples=0, **task)
    dm = CaptionDataModule(dataset, root=str(root), batch_size=5, caption_batch_size=7, num_workers=0,
                           transform=evaluator.preprocess)  # fmt: skip
    _trainer().test(evaluator, dm, verbose=False)
    return evaluator.results().metrics


def _captions(n: int, seed: int = 0) -> list[list[str]]:
    """2-4 captions per image, each unique (a repeated caption would tie exactly with another image's)."""
    return [[f"{c} number {i}" for c in class_captions("thing", 2 + i % 3, seed + i)] for i in range(n)]


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    torch.save(random_state_dict(TINY_VIT, seed=11), tmp_path / "tiny.pt")
    return tmp_path / "tiny.pt"


def test_the_three_input_formats_give_identical_metrics(tmp_path: Path, checkpoint: Path) -> None:
    images, captions = random_images(tmp_path / "src", 23), _captions(23)
    karpathy = _run(checkpoint, write_karpathy(tmp_path / "k", images, captions))
    benchmark = _run(checkpoint, write_clip_benchmark(tmp_path / "cb", images, captions))
    wds = _run(checkpoint, write_retrieval_wds(tmp_path / "wds", images, captions, [10, 13]), dataset="wds")
    assert karpathy == benchmark == wds
    assert set(karpathy) == {
        f"{kind}_recall@{k}" for kind in ("image_retrieval", "text_retrieval", "mean") for k in (1, 5, 10)
    }
    assert 0 < karpathy["image_retrieval_recall@10"] < 1  # a test with room to differ


def test_blocks_far_smaller_than_the_data_give_the_one_block_metrics(
    tmp_path: Path, checkpoint: Path
) -> None:
    images, captions = random_images(tmp_path / "src", 40, seed=1), _captions(40, seed=1)
    root = write_karpathy(tmp_path / "k", images, captions)
    whole = _run(checkpoint, root, block_size=100_000, query_block=100_000, recall_k=[1, 2, 3, 5, 10, 20])
    for block, chunk in ((1, 1), (16, 17), (33, 50)):
        assert (
            _run(checkpoint, root, block_size=block, query_block=chunk, recall_k=[1, 2, 3, 5, 10, 20])
            == whole
        )


def _cifar_caption_set(shared: Path, root: Path, per_class: int = 4) -> tuple[list[Path], list[list[str]]]:
    """``per_class`` CIFAR-10 test images of each class, 3 class-name captions each (wordings vary)."""
    images, captions = [], []
    for c, folder in enumerate(sorted((shared / "cifar10-subset" / "test").iterdir())):
        for i, path in enumerate(sorted(folder.glob("*.png"))[:per_class]):
            images.append(path)
            captions.append(
                [f"{t} (picture {c}-{i})" for t in class_captions(folder.name, 3, seed=10 * c + i)]
            )
    write_karpathy(root, images, captions)
    return images, captions


def _clip_benchmark_recall(scores: torch.Tensor, positive: torch.Tensor, k: int) -> float:
    """CLIP_benchmark's recall@k on a full score matrix (a query hits when its top k hold a positive)."""
    top = scores.topk(k, dim=1).indices
    return int((positive.gather(1, top).sum(dim=1) > 0).sum()) / len(scores)


@pytest.mark.shared
def test_recall_equals_brute_force_with_openais_code_on_real_images(
    shared_data: Path, tmp_path: Path, checkpoint: Path
) -> None:
    images, captions = _cifar_caption_set(shared_data, tmp_path / "cifar")
    ours = _run(checkpoint, tmp_path / "cifar", block_size=16, query_block=16)

    model: Any = oracle_model(torch.load(checkpoint, weights_only=True))
    transform = openai_transform(model.visual.input_resolution)
    texts = [text for texts in captions for text in texts]
    owner = torch.tensor([i for i, texts in enumerate(captions) for _ in texts])
    with torch.no_grad():
        image_emb = F.normalize(
            model.encode_image(torch.stack([transform(Image.open(p)) for p in images])), dim=-1
        )
        text_emb = F.normalize(model.encode_text(openai_clip.tokenize(texts, truncate=True)), dim=-1)
    scores = text_emb @ image_emb.T  # [captions, images], one full matrix as CLIP_benchmark holds it
    positive = owner[:, None] == torch.arange(len(images))[None, :]
    for k in (1, 5, 10):
        assert ours[f"image_retrieval_recall@{k}"] == _clip_benchmark_recall(scores, positive, k)
        assert ours[f"text_retrieval_recall@{k}"] == _clip_benchmark_recall(scores.T, positive.T, k)
    assert 0 < ours["image_retrieval_recall@10"] < 1 and 0 < ours["text_retrieval_recall@10"] < 1


def test_results_and_figure_through_the_cli(workdir: Path, cli: cli_tests.Cli) -> None:
    images, captions = random_images(workdir / "src", 9), _captions(9)
    captions[4].append("word " * 90)  # longer than the context: truncated and said so
    write_karpathy(workdir / "captions", images, captions)
    code, out, err = cli("test", "--config", str(CONF / "retrieval.yaml"))
    assert code == 0, err[-3000:]
    res = cli_tests.results(workdir)
    assert res["task"] == "zeroshot_retrieval" and res["dataset"] == "flickr30k"
    assert res["main_metric"] == "mean_recall@1" and res["num_test_samples"] == 9
    assert res["retrieval"]["num_captions"] == sum(len(c) for c in captions)
    assert res["retrieval"]["truncated_captions"] == 1
    assert res["retrieval"]["truncated_examples"][0]["caption"].startswith("word word")
    assert (workdir / "runs" / "t" / "version_0" / "retrieval_examples.png").is_file()
    assert "image_retrieval_recall@1" in out


@pytest.mark.ddp
def test_two_processes_equal_one_through_the_cli(workdir: Path, cli: cli_tests.Cli) -> None:
    """23 images and 69 captions in batches of 4 and 7: each process's loaders pad with repeats."""
    images, captions = random_images(workdir / "src", 23, seed=2), _captions(23, seed=2)
    write_karpathy(workdir / "captions", images, captions)
    config = ["--config", str(CONF / "retrieval.yaml")]
    code, _, err = cli("test", *config)
    assert code == 0, err[-3000:]
    ddp = ["--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu"]
    proc = cli_tests.run_cli("test", *config, *ddp, cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one, two = cli_tests.results(workdir, 0), cli_tests.results(workdir, 1)
    assert one["world_size"] == 1 and two["world_size"] == 2
    assert one["metrics"] == two["metrics"]
    assert 0 < one["metrics"]["image_retrieval_recall@5"] < 1


def test_wrong_data_and_cut_runs_are_clear_errors(tmp_path: Path, checkpoint: Path) -> None:
    evaluator = RetrievalEvaluator(name=str(checkpoint))
    classification = CLIPDataModule("digits", num_workers=0, transform=evaluator.preprocess)
    with pytest.raises(ConfigError, match="RetrievalEvaluator needs a CaptionDataModule"):
        _trainer().test(evaluator, classification)
    root = write_karpathy(tmp_path / "k", random_images(tmp_path / "src", 9), _captions(9))
    dm = CaptionDataModule(
        "flickr30k", root=str(root), batch_size=2, num_workers=0, transform=evaluator.preprocess
    )
    with pytest.raises(
        ConfigError, match=re.escape("4 of 9 images were embedded; run without --trainer.limit_test_batches")
    ):
        _trainer(limit_test_batches=2).test(evaluator, dm)
    with pytest.raises(ConfigError, match="retrieval runs with `test`"):
        _trainer().validate(evaluator, dm)
    with pytest.raises(ConfigError, match="recall_k must be positive"):
        RetrievalEvaluator(name=str(checkpoint), recall_k=[0])
    assert json.loads(json.dumps(evaluator.hparams))["block_size"] == 16384
