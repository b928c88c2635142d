"""The memory benchmark's large mode, downsized: it must go through the lazy path and reduce real pixels."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

BENCH = Path(__file__).resolve().parents[2] / "bench" / "imagery.py"


@pytest.mark.slow
def test_large_mode_loads_lazily_skips_the_cloudy_quarter_and_reports_peak_memory(tmp_path: Path):
    cmd = [sys.executable, str(BENCH), "--large", "--km", "2", "--days", "40", "--archive-dir", str(tmp_path / "a")]
    done = subprocess.run(
        [*cmd, "--budget-mb", "1", "--block-px", "64", "--json"], check=True, capture_output=True, text=True
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["lazy"] is True
    assert (result["scenes"], result["used"]) == (8, 6)  # every fourth item is the 80 % cloud scene
    # The used items reuse the files of synthetic scenes 0, 1 and 2 twice each: the mean of their
    # clear-pixel B04 reflectance, read here with plain rasterio, is what the cube must give.
    per_scene, valid = [], []
    for k in range(3):
        with rasterio.open(tmp_path / "a" / "files" / f"s{k}" / "B04.tif") as b04:
            dn = b04.read(1).astype(np.float64)
        with rasterio.open(tmp_path / "a" / "files" / f"s{k}" / "SCL.tif") as scl:
            clear = scl.read(1) != 9
        per_scene.append(((dn[clear] - 1000) / 10000).mean())
        valid.append(clear.mean())
    assert result["b04_mean"] == pytest.approx(np.mean(per_scene), abs=1e-4)
    assert result["valid_share"] == pytest.approx(np.mean(valid), abs=1e-4)
    assert 0 < result["peak_mb"] < result["target_mb"]
    assert result["ok"] is True
