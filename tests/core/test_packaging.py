"""A built wheel holds only the minewatch package: no top-level datasets/train/infer modules."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wheel_contains_only_minewatch(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is needed to copy the tracked tree")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path),
         str(ROOT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel = next(tmp_path.glob("minewatch-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"minewatch", next(t for t in tops if t.endswith(".dist-info"))}
    for sub in ("datasets", "train", "infer", "configs"):
        assert any(n.startswith(f"minewatch/{sub}/") for n in names), sub
    assert "minewatch/configs/profiles/drone.yaml" in names
    assert not any(n.startswith(("tests/", "bench/", "notebooks/")) for n in names)
