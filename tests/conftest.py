from __future__ import annotations

import http.server
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import lightning.pytorch  # noqa: F401  (first; see below)
import pytest
import torch.distributed as dist

# typing caches equal Unions: whichever of ``Union[int, float]`` and ``Union[float, int]`` is made
# first is what later code gets. Lightning's Trainer must make its own first (``clip-lightning``
# imports Lightning before anything else too), or jsonargparse tries float first and an in-process
# ``--trainer.limit_test_batches 2`` becomes 2.0 when a test module imported scikit-learn earlier.
# Imported before pytest's logging handlers exist, Lightning stops its logger's propagation; caplog
# needs it.
logging.getLogger("lightning.pytorch").propagate = True

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if SHARED_DATA.is_dir():
        return
    skip = pytest.mark.skip(reason=f"real images not found at {SHARED_DATA} (a checkout without ../shared)")
    for item in items:
        if "shared" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _run_in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs in its own folder: Lightning writes logs and results to the cwd."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def shared_data() -> Path:
    return SHARED_DATA


@dataclass
class FileServer:
    """A local HTTP server: ``files`` maps URL paths to bytes; ``cut`` paths send half then hang up."""

    url: str
    files: dict[str, bytes] = field(default_factory=dict)
    cut: set[str] = field(default_factory=set)
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    state = FileServer(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append(self.path)
            body = state.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.path in state.cut:
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., tuple[int, str, str]]:
    """``clip-lightning ARGS`` in this process: ``(exit code, stdout, stderr)``."""
    monkeypatch.setattr(sys, "argv", ["clip-lightning"])  # pytest's own arguments are not the command's

    def run(*args: str) -> tuple[int, str, str]:
        from clip_lightning.cli import main

        capsys.readouterr()
        environ = dict(os.environ)
        try:
            main(list(args))
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
        finally:
            # A run under strategy=ddp leaves a 1-process group listening on MASTER_PORT, which it
            # also exports: later runs, and subprocesses that inherit it, would find the port taken.
            if dist.is_available() and dist.is_initialized():
                dist.destroy_process_group()
            os.environ.clear()
            os.environ.update(environ)
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
