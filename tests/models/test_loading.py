"""Reading checkpoints: state dicts and TorchScript archives, on CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import clip_lightning as clip
from clip_lightning.errors import CheckpointError
from tests.helpers import TINY_RN, TINY_VIT, random_state_dict, save_torchscript


def test_non_checkpoint_file_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a CLIP checkpoint"):
        clip.load(str(junk), device="cpu")
    other = tmp_path / "other.pt"
    torch.save({"weight": torch.zeros(3)}, other)
    with pytest.raises(CheckpointError, match="missing key"):
        clip.load(str(other), device="cpu")


@pytest.mark.parametrize("jit", [False, True])
def test_torchscript_of_another_module_is_refused_naming_the_file(tmp_path: Path, jit: bool) -> None:
    path = tmp_path / "linear.pt"
    torch.jit.script(torch.nn.Linear(3, 4)).save(str(path))
    with pytest.raises(CheckpointError, match=f"{path} is not a CLIP checkpoint.*missing key"):
        clip.load(str(path), device="cpu", jit=jit)


def test_state_dict_missing_some_transformer_keys_is_refused_naming_them(tmp_path: Path) -> None:
    state = random_state_dict(TINY_VIT)
    missing = [k for k in state if k.startswith("transformer.resblocks.1.attn.")]
    path = tmp_path / "partial.pt"
    torch.save({k: v for k, v in state.items() if k not in missing}, path)
    with pytest.raises(CheckpointError, match="parameters missing") as info:
        clip.load(str(path), device="cpu")
    assert str(path) in str(info.value) and all(k in str(info.value) for k in missing)


@pytest.mark.parametrize("config", [TINY_VIT, TINY_RN], ids=["vit", "resnet"])
@pytest.mark.parametrize("jit", [False, True])
def test_state_dict_and_torchscript_load_on_cpu(tmp_path: Path, config, jit: bool) -> None:
    sd = random_state_dict(config)
    sd_path, ts_path = tmp_path / "sd.pt", tmp_path / "ts.pt"
    torch.save(sd, sd_path)
    save_torchscript(sd, ts_path)
    res = config.image_resolution
    image, text = torch.randn(2, 3, res, res), clip.tokenize(["a cat", "a dog on a mat"])
    reference, _ = clip.load(str(sd_path), device="cpu")
    with torch.no_grad():
        expected = reference(image, text)[0]
    for path in (sd_path, ts_path):
        if jit and path == sd_path:
            with pytest.warns(UserWarning, match="not a TorchScript archive"):
                model, preprocess = clip.load(str(path), device="cpu", jit=True)
        else:
            model, preprocess = clip.load(str(path), device="cpu", jit=jit)
        assert isinstance(model, torch.jit.ScriptModule) == (jit and path == ts_path)
        assert preprocess.transforms[1].size == (res, res)
        with torch.no_grad():
            torch.testing.assert_close(model(image, text)[0], expected, rtol=1e-4, atol=1e-4)
            assert model.encode_image(image).dtype == torch.float32


def test_fp16_torchscript_is_patched_to_fp32_on_cpu(tmp_path: Path) -> None:
    sd = random_state_dict(TINY_VIT)
    save_torchscript(sd, tmp_path / "ts16.pt", half=True)
    model, _ = clip.load(str(tmp_path / "ts16.pt"), device="cpu", jit=True)
    eager, _ = clip.load(str(tmp_path / "ts16.pt"), device="cpu", jit=False)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    image, text = torch.randn(2, 3, 32, 32), clip.tokenize(["a cat", "a dog"])
    with torch.no_grad():
        out = model.encode_image(image)
        assert out.dtype == torch.float32
        torch.testing.assert_close(out, eager.encode_image(image), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(model.encode_text(text), eager.encode_text(text), rtol=1e-4, atol=1e-4)


def test_fp32_checkpoint_keeps_full_precision_on_cpu(tmp_path: Path) -> None:
    sd = random_state_dict(TINY_VIT, fp16_exact=False)
    torch.save(sd, tmp_path / "fp32.pt")
    model, _ = clip.load(str(tmp_path / "fp32.pt"), device="cpu")
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, sd[name]), name


def test_wrapped_state_dict_with_module_prefix(tmp_path: Path) -> None:
    sd = random_state_dict(TINY_VIT)
    torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in sd.items()}}, tmp_path / "w.pt")
    model, _ = clip.load(str(tmp_path / "w.pt"), device="cpu")
    assert torch.equal(model.logit_scale, sd["logit_scale"])
