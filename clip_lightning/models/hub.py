"""The download cache of OpenAI's published checkpoints: URLs, verified downloads, local paths."""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

from ..errors import DownloadError, ModelNotFoundError

__all__ = [
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "DEFAULT_ROOT",
    "MODELS",
    "available_models",
    "checkpoint_sha256",
    "download",
    "model_url",
    "resolve_checkpoint",
    "sha256_file",
]

DEFAULT_BASE_URL = "https://openaipublic.azureedge.net/clip/models"
BASE_URL_ENV = "CLIP_LIGHTNING_BASE_URL"
DEFAULT_ROOT = os.path.join("~", ".cache", "clip")

# name -> (sha256 of the file, file name); the URL is <base>/<sha256>/<file name>. Public, so a
# mirror of other checkpoints (or a test) can register more names.
MODELS: dict[str, tuple[str, str]] = {
    "RN50": ("afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762", "RN50.pt"),
    "RN101": ("8fa8567bab74a42d41c5915025a8e4538c3bdbe8804a470a72f30b0d94fab599", "RN101.pt"),
    "RN50x4": ("7e526bd135e493cef0776de27d5f42653e6b4c8bf9e0f653bb11773263205fdd", "RN50x4.pt"),
    "RN50x16": ("52378b407f34354e150460fe41077663dd5b39c54cd0bfd2b27167a4a06ec9aa", "RN50x16.pt"),
    "RN50x64": ("be1cfb55d75a9666199fb2206c106743da0f6468c9d327f3e0d0a543a9919d9c", "RN50x64.pt"),
    "ViT-B/32": ("40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af", "ViT-B-32.pt"),
    "ViT-B/16": ("5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f", "ViT-B-16.pt"),
    "ViT-L/14": ("b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836", "ViT-L-14.pt"),
    "ViT-L/14@336px": (
        "3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02",
        "ViT-L-14-336px.pt",
    ),
}

_CHUNK = 1 << 20


def available_models() -> list[str]:
    """Names of the published CLIP models."""
    return list(MODELS)


def model_url(name: str) -> str:
    """Download URL of a published model; ``$CLIP_LIGHTNING_BASE_URL`` replaces the host prefix."""
    sha, filename = MODELS[name]
    base = os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    return f"{base.rstrip('/')}/{sha}/{filename}"


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def _file_lock(path: str) -> Iterator[None]:
    """Inter-process lock, so ranks sharing a cache download a file once."""
    try:
        import fcntl
    except ImportError:  # not POSIX: atomic renames still keep the cache sound
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _how_to_recover(filename: str) -> str:
    return (
        f"To use a checkpoint you already have, pass its path instead of the name, e.g. "
        f"clip_lightning.load('/path/to/{filename}') or --model.name /path/to/{filename}; "
        f"to use a mirror, set {BASE_URL_ENV} to a URL that serves <sha256>/{filename}."
    )


def _fetch(url: str, out: Any, progress: bool) -> str:
    """Stream ``url`` into the open file ``out``; return the SHA256 of what was written."""
    from tqdm import tqdm

    digest = hashlib.sha256()
    received = 0
    with urllib.request.urlopen(url, timeout=60) as response:
        expected_size = response.headers.get("Content-Length")
        total = int(expected_size) if expected_size and expected_size.isdigit() else None
        with tqdm(total=total, unit="iB", unit_scale=True, unit_divisor=1024, disable=not progress) as bar:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if total is not None and received != total:
        raise http.client.IncompleteRead(b"", total - received)
    return digest.hexdigest()


def download(url: str, root: str, expected_sha256: str | None = None, progress: bool = True) -> str:
    """Fetch ``url`` into ``root`` and return the file's path.

    The file is written under a temporary name and moved into place only once complete and,
    when ``expected_sha256`` is given, matching it. A cached file with another hash is fetched
    again. On failure nothing is left where a later run would trust it.
    """
    filename = os.path.basename(urlparse(url).path) or "checkpoint.pt"
    target = os.path.join(root, filename)
    if os.path.isfile(target) and expected_sha256 is not None and sha256_file(target) == expected_sha256:
        return target  # a verified cache is only read: no lock file, so a read-only cache works
    try:
        os.makedirs(root, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as err:
        raise DownloadError(
            f"Cannot write the checkpoint cache {root!r} ({err.strerror or err}) to download {filename}; "
            f"pass download_root= (--model.download_root) with a folder you can write to. "
            f"{_how_to_recover(filename)}"
        ) from None
    with _file_lock(target + ".lock"):
        if os.path.exists(target):
            if not os.path.isfile(target):
                raise DownloadError(f"{target} exists and is not a regular file; move it away and retry.")
            if expected_sha256 is None or sha256_file(target) == expected_sha256:
                return target
            warnings.warn(
                f"{target} exists, but its SHA256 does not match; downloading it again", stacklevel=2
            )
        fd, tmp = tempfile.mkstemp(dir=root, prefix=f".{filename}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                try:
                    actual = _fetch(url, out, progress)
                except http.client.IncompleteRead as err:
                    raise DownloadError(
                        f"Downloading {url} was cut short ({err.expected} bytes missing); nothing was "
                        f"kept. Retry, or: {_how_to_recover(filename)}"
                    ) from None
                except urllib.error.HTTPError as err:
                    raise DownloadError(
                        f"Could not download {url}: HTTP {err.code} {err.reason}. {_how_to_recover(filename)}"
                    ) from None
                except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as err:
                    reason = getattr(err, "reason", None) or err
                    raise DownloadError(
                        f"Could not download {url}: {reason}. {_how_to_recover(filename)}"
                    ) from None
                out.flush()
                os.fsync(out.fileno())
            if expected_sha256 is not None and actual != expected_sha256:
                raise DownloadError(
                    f"Downloaded {url}, but its SHA256 is {actual}, expected {expected_sha256}; "
                    f"the file was discarded. {_how_to_recover(filename)}"
                )
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
            raise
    return target


def resolve_checkpoint(name: str, download_root: str | None = None, progress: bool = True) -> str:
    """Local path of ``name`` (a published model name, downloaded if needed, or a file path)."""
    if name in MODELS:
        root = os.path.expanduser(download_root or DEFAULT_ROOT)
        return download(model_url(name), root, MODELS[name][0], progress=progress)
    if os.path.isfile(name):
        return name
    hint = difflib.get_close_matches(name, available_models(), n=1)
    suggestion = f" Did you mean {hint[0]!r}?" if hint else ""
    raise ModelNotFoundError(
        f"Model {name!r} not found: it is neither a published model nor a file or folder.{suggestion} "
        f"Available models: {available_models()}; or pass the path to a checkpoint file, a Hugging "
        f"Face CLIPModel or open_clip folder, or hf-hub:ORG/NAME."
    )


def checkpoint_sha256(name: str, path: str) -> str:
    """SHA256 of a checkpoint: known from the URL for published models, else computed."""
    return MODELS[name][0] if name in MODELS else sha256_file(path)
