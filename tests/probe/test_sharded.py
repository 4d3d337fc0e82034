"""Features kept where they were made: 2 processes, each fitting on its own share, no gathering."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import TINY_VIT, random_state_dict
from tests.test_cli import conf, results, run_cli


@pytest.mark.ddp
@pytest.mark.slow
def test_two_processes_fit_their_own_shares_and_a_cached_run_fits_the_same(tmp_path: Path) -> None:
    torch.save(random_state_dict(TINY_VIT, seed=3), tmp_path / "tiny.pt")
    cache = tmp_path / "cache"
    ddp = ["--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu"]
    probe = {"C": 0.316, "cache_dir": str(cache), "shard_features": True, "max_iter": 200}
    for _ in range(2):  # the second run reads each process's share from the cache
        proc = run_cli("test", *conf(probe=probe), *ddp, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
    first, second = results(tmp_path, 0), results(tmp_path, 1)
    shares = first["linear_probe"]["train_samples_per_process"]
    # digits' train split holds 1,295 samples: 648 + 647, nobody holds more than its half
    assert sum(shares) == 1295 and max(shares) == 648
    assert second["linear_probe"]["train_samples_per_process"] == shares
    assert first["metrics"] == second["metrics"]
    assert [f["n_iter"] for f in first["linear_probe"]["fits"]] == [
        f["n_iter"] for f in second["linear_probe"]["fits"]
    ]
    # One process holding every sample fits the same weights: the same iterations and metrics.
    proc = run_cli("test", *conf(probe={**probe, "cache_dir": None}), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    alone = results(tmp_path, 2)
    assert alone["world_size"] == 1 and alone["metrics"] == first["metrics"]
    assert alone["linear_probe"]["fits"][-1]["n_iter"] == first["linear_probe"]["fits"][-1]["n_iter"]
    (file,) = cache.glob("*.npz")  # one merged entry, in index order, as one process writes it
    with np.load(file) as data:
        assert np.array_equal(data["index"], np.arange(1295)) and data["features"].shape == (1295, 64)
