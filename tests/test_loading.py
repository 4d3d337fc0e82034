from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
import torch

import clip_lightning as clip
from clip_lightning.models import loading
from clip_lightning.models.loading import CheckpointError, DownloadError, download

from .conftest import FileServer
from .helpers import TINY_RN, TINY_VIT, random_state_dict, save_torchscript


def _bytes_of(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _cache_files(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if not p.name.endswith(".lock")) if root.exists() else []


@pytest.fixture
def tiny_published(monkeypatch: pytest.MonkeyPatch, file_server: FileServer) -> tuple[str, bytes, str]:
    """Registers a published model "Tiny" served by the local server through the mirror variable."""
    body = _bytes_of(random_state_dict(TINY_VIT))
    sha = hashlib.sha256(body).hexdigest()
    monkeypatch.setitem(loading._MODELS, "Tiny", (sha, "Tiny.pt"))
    monkeypatch.setenv(loading.BASE_URL_ENV, file_server.url + "/mirror/")
    file_server.files[f"/mirror/{sha}/Tiny.pt"] = body
    return f"/mirror/{sha}/Tiny.pt", body, sha


def test_good_download_is_cached_and_loaded(tmp_path: Path, file_server: FileServer, tiny_published) -> None:
    path, body, _sha = tiny_published
    model, preprocess = clip.load("Tiny", device="cpu", download_root=str(tmp_path))
    assert _cache_files(tmp_path) == ["Tiny.pt"]
    assert (tmp_path / "Tiny.pt").read_bytes() == body
    clip.load("Tiny", device="cpu", download_root=str(tmp_path))
    assert file_server.requests == [path]  # the second load trusted the verified cache
    assert model.visual.input_resolution == 32
    assert preprocess.transforms[1].size == (32, 32)


def test_wrong_hash_names_url_and_both_hashes(
    tmp_path: Path, file_server: FileServer, tiny_published
) -> None:
    path, body, sha = tiny_published
    file_server.files[path] = body[:-10] + b"0123456789"
    actual = hashlib.sha256(file_server.files[path]).hexdigest()
    with pytest.raises(DownloadError) as err:
        clip.load("Tiny", device="cpu", download_root=str(tmp_path))
    message = str(err.value)
    assert file_server.url + path in message and sha in message and actual in message
    assert "pass its path" in message
    assert _cache_files(tmp_path) == []


def test_transfer_cut_short_keeps_nothing(tmp_path: Path, file_server: FileServer, tiny_published) -> None:
    path, _, _ = tiny_published
    file_server.cut.add(path)
    with pytest.raises(DownloadError, match=r"cut short|Could not download"):
        clip.load("Tiny", device="cpu", download_root=str(tmp_path))
    assert _cache_files(tmp_path) == []


def test_dead_server_and_missing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file_server, tiny_published
) -> None:
    _path, _, _ = tiny_published
    file_server.files.clear()
    with pytest.raises(DownloadError, match="404"):
        clip.load("Tiny", device="cpu", download_root=str(tmp_path))
    monkeypatch.setenv(loading.BASE_URL_ENV, "http://127.0.0.1:9")  # discard port: nothing listens
    with pytest.raises(DownloadError) as err:
        clip.load("Tiny", device="cpu", download_root=str(tmp_path))
    assert "http://127.0.0.1:9/" in str(err.value) and "CLIP_LIGHTNING_BASE_URL" in str(err.value)
    assert _cache_files(tmp_path) == []


def test_corrupt_cached_file_is_fetched_again(
    tmp_path: Path, file_server: FileServer, tiny_published
) -> None:
    _, body, _ = tiny_published
    (tmp_path / "Tiny.pt").write_bytes(b"half a file")
    with pytest.warns(UserWarning, match="does not match"):
        clip.load("Tiny", device="cpu", download_root=str(tmp_path))
    assert (tmp_path / "Tiny.pt").read_bytes() == body


def test_download_without_hash(tmp_path: Path, file_server: FileServer) -> None:
    file_server.files["/x/file.bin"] = b"payload"
    path = download(file_server.url + "/x/file.bin", str(tmp_path), progress=False)
    assert Path(path).read_bytes() == b"payload"


def test_official_urls_and_mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(loading.BASE_URL_ENV, raising=False)
    assert loading.model_url("ViT-B/32") == (
        "https://openaipublic.azureedge.net/clip/models/"
        "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt"
    )
    monkeypatch.setenv(loading.BASE_URL_ENV, "http://mirror.local/clip/")
    assert loading.model_url("RN50").startswith("http://mirror.local/clip/afeb0e10")


def test_unknown_name_lists_models() -> None:
    with pytest.raises(RuntimeError, match="Available models") as err:
        clip.load("ViT-B/33")
    assert "ViT-B/32" in str(err.value) and "Did you mean" in str(err.value)


def test_non_checkpoint_file_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a CLIP checkpoint"):
        clip.load(str(junk), device="cpu")
    other = tmp_path / "other.pt"
    torch.save({"weight": torch.zeros(3)}, other)
    with pytest.raises(CheckpointError, match="missing key"):
        clip.load(str(other), device="cpu")


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
