"""The download cache: verified downloads, the mirror variable, published names."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
import torch

import clip_lightning as clip
from clip_lightning.errors import DownloadError
from clip_lightning.models import hub
from clip_lightning.models.hub import download
from tests.conftest import FileServer
from tests.helpers import TINY_VIT, random_state_dict


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
    monkeypatch.setitem(hub.MODELS, "Tiny", (sha, "Tiny.pt"))
    monkeypatch.setenv(hub.BASE_URL_ENV, file_server.url + "/mirror/")
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
    monkeypatch.setenv(hub.BASE_URL_ENV, "http://127.0.0.1:9")  # discard port: nothing listens
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
    monkeypatch.delenv(hub.BASE_URL_ENV, raising=False)
    assert hub.model_url("ViT-B/32") == (
        "https://openaipublic.azureedge.net/clip/models/"
        "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt"
    )
    monkeypatch.setenv(hub.BASE_URL_ENV, "http://mirror.local/clip/")
    assert hub.model_url("RN50").startswith("http://mirror.local/clip/afeb0e10")


def test_unknown_name_lists_models() -> None:
    with pytest.raises(RuntimeError, match="Available models") as err:
        clip.load("ViT-B/33")
    assert "ViT-B/32" in str(err.value) and "Did you mean" in str(err.value)


def test_unwritable_cache_is_one_clear_error_and_a_verified_cache_needs_no_writes(
    tmp_path: Path, file_server: FileServer, tiny_published
) -> None:
    (tmp_path / "file").write_text("not a folder")  # unwritable even for root, unlike chmod
    with pytest.raises(DownloadError, match=r"Cannot write the checkpoint cache .*--model.download_root"):
        clip.load("Tiny", device="cpu", download_root=str(tmp_path / "file" / "cache"))
    assert file_server.requests == []  # refused before fetching anything
    cache = tmp_path / "cache"
    clip.load("Tiny", device="cpu", download_root=str(cache))
    (cache / "Tiny.pt.lock").unlink()
    cache.chmod(0o555)  # read-only (root may still write; the point is that nothing is written)
    try:
        clip.load("Tiny", device="cpu", download_root=str(cache))
    finally:
        cache.chmod(0o755)
    assert sorted(p.name for p in cache.iterdir()) == ["Tiny.pt"]  # no lock file for a cache hit
