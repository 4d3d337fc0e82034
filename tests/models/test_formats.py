"""What a user can name (files, folders, hf-hub: ids) and what the evaluator makes of it."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import clip_lightning as clip
from clip_lightning import CLIPEvaluator
from clip_lightning.errors import CheckpointError, DownloadError, ModelNotFoundError
from clip_lightning.models import build_model
from clip_lightning.models.formats import read_checkpoint
from tests.helpers import TINY_VIT, random_state_dict
from tests.models.test_hf import save_random, tiny_config


def _fake_hub_cache(cache: Path, repo: str, source: Path) -> Path:
    """huggingface_hub's cache layout: models--ORG--NAME/{refs/main, snapshots/<commit>/...}."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)
    shutil.copytree(source, root / "snapshots" / commit)
    return root / "snapshots" / commit


def test_hf_hub_names_resolve_in_the_local_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as hub_constants

    save_random(tiny_config("gelu"), tmp_path / "saved")
    cache = tmp_path / "hub"
    snapshot = _fake_hub_cache(cache, "org/tiny-clip", tmp_path / "saved")
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    checkpoint = read_checkpoint("hf-hub:org/tiny-clip")
    assert checkpoint.format == "huggingface" and checkpoint.source == "hf-hub:org/tiny-clip"
    assert checkpoint.files == [str(snapshot / "model.safetensors")]
    with pytest.raises(
        DownloadError, match=rf"hf-hub:org/missing: not in the local Hugging Face cache \({cache}\)"
    ):
        clip.load("hf-hub:org/missing", device="cpu")


def test_checkpoint_id_is_the_content_hash(tmp_path: Path) -> None:
    sd = random_state_dict(TINY_VIT)
    save_file(sd, tmp_path / "w.safetensors")
    digest = hashlib.sha256((tmp_path / "w.safetensors").read_bytes()).hexdigest()
    checkpoint = read_checkpoint(str(tmp_path / "w.safetensors"))
    assert checkpoint.checkpoint_id == f"sha256:{digest}" and checkpoint.format == "state_dict"
    # A safetensors file gives the very weights, and so the very model, of the pickled one.
    torch.save(sd, tmp_path / "w.pt")
    a, _ = clip.load(str(tmp_path / "w.safetensors"), device="cpu")
    b, _ = clip.load(str(tmp_path / "w.pt"), device="cpu")
    image, text = torch.randn(2, 3, 32, 32), clip.tokenize(["a cat", "a dog"])
    with torch.no_grad():
        assert torch.equal(a(image, text)[0], b(image, text)[0])
        assert torch.equal(a(image, text)[0], build_model(sd)(image, text)[0])


def test_unreadable_names_give_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"empty is a folder without open_clip_config\.json"):
        clip.load(str(tmp_path / "empty"), device="cpu")
    with pytest.raises(ModelNotFoundError, match="neither a published model nor a file or folder"):
        clip.load(str(tmp_path / "nothing-here"), device="cpu")
    corrupt = tmp_path / "corrupt.safetensors"
    save_file(random_state_dict(TINY_VIT), corrupt)
    corrupt.write_bytes(corrupt.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=f"{corrupt} is not a readable safetensors file"):
        clip.load(str(corrupt), device="cpu")
    save_random(tiny_config(vocab_size=1000), tmp_path / "vocab")
    with pytest.raises(CheckpointError, match="a text vocabulary of 1000 tokens"):
        clip.load(str(tmp_path / "vocab"), device="cpu")
    with pytest.raises(CheckpointError, match="activation must be one of"):
        clip.load(str(tmp_path / "nothing-here"), device="cpu", activation="relu")


def test_evaluator_takes_a_hugging_face_folder(tmp_path: Path) -> None:
    save_random(tiny_config("gelu"), tmp_path / "hf")
    evaluator = CLIPEvaluator(name=str(tmp_path / "hf"))
    assert evaluator.checkpoint_format == "huggingface" and evaluator.checkpoint_source == str(
        tmp_path / "hf"
    )
    assert evaluator.checkpoint_id == read_checkpoint(str(tmp_path / "hf")).checkpoint_id
    assert evaluator.model.config.activation == "gelu" and not evaluator.model.training
    assert all(not p.requires_grad for p in evaluator.model.parameters())
    random = CLIPEvaluator(name="ViT-B/32", pretrained=False, activation="gelu", vision_head_width=128)
    assert random.model.config.vision_heads == 6 and random.checkpoint_id.endswith(":gelu:128")


def test_cli_runs_an_open_clip_state_dict_and_a_hugging_face_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from clip_lightning.cli import main
    from tests.models.test_open_clip import TINY_VIT as OPEN_CLIP_VIT
    from tests.models.test_open_clip import tiny_model

    monkeypatch.setattr(sys, "argv", ["clip-lightning"])
    oracle, _ = tiny_model(OPEN_CLIP_VIT, quick_gelu=False)
    save_file(oracle.state_dict(), tmp_path / "open_clip.safetensors")
    save_random(tiny_config("gelu"), tmp_path / "hf")
    conf = str(Path(__file__).parents[1] / "conf" / "zeroshot.yaml")
    stated = ["--model.activation", "gelu", "--model.vision_head_width", "80", "--model.text_heads", "2"]
    for name, extra in ((tmp_path / "open_clip.safetensors", stated), (tmp_path / "hf", [])):
        main(
            ["test", "--config", conf, "--model.name", str(name), *extra, "--trainer.limit_test_batches", "1"]
        )
        assert "acc1" in capsys.readouterr().out
    code = None
    try:
        main(["test", "--config", conf, "--model.name", str(tmp_path / "hf"), "--model.activation", "relu"])
    except SystemExit as exit_:
        code = exit_.code
    assert code == 2 and "activation must be one of" in capsys.readouterr().err


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_gelu_models_stay_batch_invariant_and_close_to_the_reference(precision: str) -> None:
    """Exact GELU skips the QuickGELU fusion; features still do not depend on the batch size."""
    config = dataclasses.replace(TINY_VIT, activation="gelu", vision_head_width=16, vision_mlp_ratio=2.5)
    sd = random_state_dict(config)
    model, reference = build_model(sd, config=config), build_model(sd, config=config, accelerated=False)
    torch.manual_seed(3)
    images, text = torch.randn(9, 3, 32, 32), clip.tokenize(["a cat", "a photo of a dog", "a diagram"])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        full = model.encode_image(images)
        for n in (1, 2, 7):
            assert torch.equal(model.encode_image(images[:n]), full[:n]), n
        if precision == "fp32":
            torch.testing.assert_close(full, reference.encode_image(images), rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(
                model.encode_text(text), reference.encode_text(text), rtol=1e-4, atol=1e-5
            )
