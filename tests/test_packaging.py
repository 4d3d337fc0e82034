from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VOCAB_SHA256 = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"


@pytest.mark.slow
def test_wheel_ships_vocabulary_and_prompts(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("clip_lightning-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        vocab = zf.read("clip_lightning/models/bpe_simple_vocab_16e6.txt.gz")
        assert "clip_lightning/datasets/prompts.json" in names
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "clip-lightning = clip_lightning.cli:main" in zf.read(entry_points).decode()
    assert len(vocab) == 1_356_917
    assert hashlib.sha256(vocab).hexdigest() == VOCAB_SHA256
    assert not any(n.startswith("tests/") for n in names)
