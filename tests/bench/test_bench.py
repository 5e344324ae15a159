"""The benchmark's own building blocks: mosaicked scenes are faithful.

The figures in BENCHMARKS.md rest on this, checked on a small generated scene: a mosaic repeats its base
pixel for pixel on a contiguous grid (so big scenes are real imagery, not padding).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from minewatch.datasets.synth import generate_scenes

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from scenes import mosaic  # noqa: E402

BASE = 384
SIZE = 1000


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> tuple[Path, Path]:
    """(base scene folder, mosaic folder) of a small generated drone scene."""
    root = tmp_path_factory.mktemp("bench")
    [base] = generate_scenes(root / "gen", seed=5, size=BASE)
    out = root / "mosaic"
    out.mkdir()
    mosaic(base / "optical.tif", out / "optical.tif", SIZE)
    mosaic(base / "thermal.tif", out / "thermal.tif", SIZE, optical_base=base / "optical.tif")
    return base, out


def test_mosaic_repeats_the_base_on_a_contiguous_grid(scenes) -> None:
    base, out = scenes
    with rasterio.open(base / "optical.tif") as b, rasterio.open(out / "optical.tif") as m:
        assert (m.width, m.height, m.count) == (SIZE, SIZE, b.count)
        assert m.crs == b.crs and m.transform == b.transform and m.nodata == b.nodata
        assert m.descriptions == b.descriptions and m.overviews(1)
        win = Window(BASE - 50, 2 * BASE - 70, 200, 180)  # crosses seams in both directions
        got = m.read(window=win)
        rows = np.arange(win.row_off, win.row_off + win.height) % BASE
        cols = np.arange(win.col_off, win.col_off + win.width) % BASE
        np.testing.assert_array_equal(got, b.read()[:, rows[:, None], cols[None, :]])
    with rasterio.open(base / "thermal.tif") as b, rasterio.open(out / "thermal.tif") as m:
        period = BASE // 4
        assert m.width == m.height == math.ceil(SIZE / 4) + 1
        assert m.transform == b.transform and m.tags()["UNITS"] == "kelvin"
        np.testing.assert_array_equal(m.read(1, window=Window(period, period, period, period)),
                                      b.read(1, window=Window(0, 0, period, period)))


def test_child_peak_memory_is_its_own(tmp_path) -> None:
    """A child's peak RSS must not include the memory of the process that started it."""
    import subprocess

    ballast = np.ones(400 * 2**20, dtype=np.uint8)  # 400 MiB, touched
    bench = str(Path(__file__).resolve().parents[2] / "bench")
    code = f"import sys; sys.path.insert(0, {bench!r}); from common import peak_rss_mb; print(peak_rss_mb())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert ballast.sum() == ballast.size
    assert float(out) < 200, f"child reported {out.strip()} MiB while its parent held 400 MiB"


_NEEDS_TORCH = pytest.mark.torch


@pytest.mark.parametrize("script", ["run_all.py", "child.py", "bench_layout.py", "bench_synth.py",
                                    "same_outputs.py", "bench_memory.py", "bench_gpu.py", "bench_dense.py",
                                    "object_rule.py", "count_failures.py", "lone_pass.py",
                                    pytest.param("block_inference.py", marks=_NEEDS_TORCH),
                                    pytest.param("bench_generate_set.py", marks=_NEEDS_TORCH)])
def test_bench_scripts_start(script) -> None:
    """Every benchmark script imports and parses its arguments (an import error would only show at
    ``make bench`` time otherwise)."""
    import subprocess

    done = subprocess.run([sys.executable, str(Path(__file__).resolve().parents[2] / "bench" / script), "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage" in done.stdout.lower()


def test_report_goals_and_time_breakdown_from_rows() -> None:
    """The goal lines and the time breakdown follow from the measured rows (no measuring here)."""
    import run_all

    bench = run_all.Bench(models=None, repeats=1, tg_python=None)  # type: ignore[arg-type]

    def row(section: str, name: str, seconds: float, tiles: int = 1000, rss: float = 300) -> None:
        r = run_all.Row(section, name, 4096)
        r.runs.append({"seconds": seconds, "n_tiles": tiles, "n_scanned": tiles, "peak_rss_mb": rss,
                       "tiles_per_s": tiles / seconds})
        bench.rows.append(r)

    row("scan", "minewatch onnxruntime fp32", 1.0)
    row("scan", "TorchGeo, DataLoader workers=2, torch threads=1", 4.0)
    row("ceiling", "minewatch onnxruntime fp32", 0.25)
    row("read", "minewatch data module (scan reader)", 0.5)
    lines, ratio = run_all.goals(bench)
    assert ratio == pytest.approx(4.0)
    assert "x4.00" in lines[0] and "goal x3: met" in lines[0]
    assert "scan at 25% of the onnxruntime model ceiling" in lines[1] and "missed" in lines[1]
    assert not any("dense head" in line for line in lines)  # no dense model measured, no line
    row("scan", run_all.DENSE_NAME, 1.6)
    lines, ratio = run_all.goals(bench)
    assert ratio == pytest.approx(4.0)  # the headline stays the classifier's
    assert "with the dense head: scan/TorchGeo = x2.50" in lines[1] and "+60%" in lines[1]
    assert "goal x3: missed" in lines[1]
    text = "\n".join(run_all.breakdown(bench))
    assert "the reader alone takes 0.50 s" in text and "busy 50% of the scan" in text


def test_measured_configurations_take_turns() -> None:
    """run_all.measure_rows (make bench and bench_dense.py) runs the configurations in turns (a, b, a, b), not one
    after the other, so that a change in machine load falls on all of them alike."""
    import run_all

    stamp = ["-c", "import json, time; print(json.dumps({'t': time.perf_counter_ns(), 'seconds': 0.0}))"]
    rows = run_all.measure_rows([run_all.Config("s", name, 1, stamp) for name in ("a", "b")], repeats=2)
    order = sorted((r["t"], row.name) for row in rows for r in row.runs)
    assert [name for _, name in order] == ["a", "b", "a", "b"]


def test_bench_models_fall_back_to_the_committed_checkpoint(tmp_path, monkeypatch) -> None:
    """Without a runs/default of its own, a fresh clone's make bench runs the committed weights (the .pt beside
    the committed ONNX file) on the torch and TorchGeo paths, not a smoke model; a run's own checkpoint wins."""
    import common

    committed, own = tmp_path / "models" / "minewatch-drone.pt", tmp_path / "runs" / "default" / "best.pt"
    for p in (committed, own):
        p.parent.mkdir(parents=True)
    committed.write_bytes(b"weights")
    onnx, int8 = tmp_path / "model.onnx", tmp_path / "model-int8.onnx"
    onnx.write_bytes(b"graph")
    int8.write_bytes(b"graph")
    monkeypatch.setattr(common, "DEFAULT_CHECKPOINT", own)
    monkeypatch.setattr(common, "COMMITTED_CHECKPOINT", committed)
    monkeypatch.setattr(common, "_minewatch", lambda *a: pytest.fail(f"no model should be trained or exported: {a}"))
    models = common.resolve_models(onnx, None, int8)
    assert models.checkpoint == committed and models.note == ""
    own.write_bytes(b"weights")
    assert common.resolve_models(onnx, None, int8).checkpoint == own
