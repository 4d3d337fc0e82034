from __future__ import annotations

import os
import subprocess
import sys

import pytest

import clip_lightning.cli
from clip_lightning.ops import keep_freed_memory

# A forward pass in miniature: activation-sized buffers allocated, touched and freed, batch after
# batch. Prints the page faults of three batches after three warm-up ones (the steady state).
_SCRIPT = """
import resource, sys, torch
from clip_lightning.ops import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
def batch():
    a = torch.empty(16 << 20).fill_(1.0)  # 64 MiB
    b = torch.empty(4 << 20).fill_(1.0)
    del a
    c = torch.empty(16 << 20).fill_(1.0)
    del b, c
for _ in range(3):
    batch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    batch()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

# Pages of the three measured batches' 64 MiB buffers: what faults again when nothing is reused.
_PAGES = 3 * (64 << 20) // 4096

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")


def _run(mode: str, **env: str) -> tuple[str, int]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | env
    out = subprocess.run([sys.executable, "-c", _SCRIPT, mode], capture_output=True, text=True,
                         env=environ, check=True).stdout.split()  # fmt: skip
    return out[0], int(out[1])


@linux_only
def test_freed_memory_is_reused_without_page_faults() -> None:
    _, default_faults = _run("default")
    applied, kept_faults = _run("keep")
    assert default_faults > _PAGES // 2  # glibc's default: a fresh mmap, every page faults again
    assert applied == "True"
    assert kept_faults < default_faults / 4  # reused: at most a straggler buffer faults in


@linux_only
def test_glibc_environment_variables_win() -> None:
    applied, faults = _run("keep", MALLOC_TRIM_THRESHOLD_="131072")
    assert applied == "False"
    assert faults > _PAGES // 2


def test_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError, match="threshold"):
        keep_freed_memory(0)


def test_the_command_keeps_freed_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(clip_lightning.cli, "keep_freed_memory", lambda: calls.append(1) or True)
    with pytest.raises(SystemExit) as exit_info:
        clip_lightning.cli.main(["--help"])
    assert exit_info.value.code == 0
    assert calls == [1]
