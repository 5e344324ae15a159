"""The benchmark's own building blocks: mosaicked scenes are faithful, and the prototype reader is exact.

The figures in BENCHMARKS.md rest on two claims checked here on a small generated scene: a mosaic repeats
its base pixel for pixel on a contiguous grid (so big scenes are real imagery, not padding), and
``bench/fast_reader.py`` yields the same model inputs as the product's reader (so its speed-up is not
bought with different results).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from minewatch.datasets.features import InputSpec
from minewatch.datasets.scene import Scene
from minewatch.datasets.synth import generate_scenes
from minewatch.datasets.tiles_job import plan_tiles
from minewatch.infer.reader import read_tiles
from minewatch.model_meta import ThermalInput

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import fast_reader  # noqa: E402
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


def test_prototype_reader_gives_the_products_inputs(scenes) -> None:
    _, out = scenes
    spec = InputSpec(("red", "green", "blue"), (0.3, 0.3, 0.3), (0.1, 0.1, 0.1),
                     ThermalInput(background_m=100, background_gsd_m=25, dt_scale_k=10, dt_clip_k=40), 64)
    with Scene(out / "optical.tif", out / "thermal.tif", gsd_m=0.5, background_m=100,
               background_step_m=25) as scene:
        tiles = plan_tiles(scene, tile_m=32, stride_m=16, tile_px=64).tiles
        product = list(read_tiles(scene, tiles, spec, max_nodata=0.5, max_cloud=0.6))
        proto = list(fast_reader.read_tiles(scene, tiles, spec, max_nodata=0.5, max_cloud=0.6))
    assert [r.tile.tile_id for r in product] == [r.tile.tile_id for r in proto] and len(product) > 100
    for a, b in zip(product, proto, strict=True):
        assert (a.x is None) == (b.x is None)
        if a.x is not None:
            np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal([a.nodata_fraction, a.cloud_fraction, a.dt_max_k, a.z_max],
                                      [b.nodata_fraction, b.cloud_fraction, b.dt_max_k, b.z_max])


def test_prototype_reader_v2_matches_up_to_float_rounding(scenes) -> None:
    _, out = scenes
    spec = InputSpec(("red", "green", "blue"), (0.3, 0.3, 0.3), (0.1, 0.1, 0.1),
                     ThermalInput(background_m=100, background_gsd_m=25, dt_scale_k=10, dt_clip_k=40), 64)
    with Scene(out / "optical.tif", out / "thermal.tif", gsd_m=0.5, background_m=100,
               background_step_m=25) as scene:
        tiles = plan_tiles(scene, tile_m=32, stride_m=16, tile_px=64).tiles
        product = list(read_tiles(scene, tiles, spec, max_nodata=0.5, max_cloud=0.6))
        v2 = list(fast_reader.read_tiles_v2(scene, tiles, spec, max_nodata=0.5, max_cloud=0.6))
    assert [r.tile.tile_id for r in product] == [r.tile.tile_id for r in v2]
    for a, b in zip(product, v2, strict=True):
        assert (a.nodata_fraction, a.cloud_fraction) == (b.nodata_fraction, b.cloud_fraction)
        assert (a.x is None) == (b.x is None)
        if a.x is not None:
            np.testing.assert_allclose(a.x, b.x, rtol=0, atol=1e-5)
        np.testing.assert_allclose([a.dt_max_k, a.z_max], [b.dt_max_k, b.z_max], rtol=1e-5, atol=1e-5)


def test_rewriting_the_report_keeps_the_hand_written_sections(tmp_path):
    import run_all

    old = tmp_path / "BENCHMARKS.md"
    old.write_text("# old\n\n## Model quality\n\nF1 0.78\n\n## Tiled vs striped\n\nx10\n\n"
                   "## Synthetic generator\n\n4.4 s\n\n## Commands\nold\n")
    new = ("# new\n\n## Synthetic generator\n\n4.5 s\n\n## Model quality\n\n(filled in by the lead)\n\n"
           "## Commands\nnew\n")
    out = run_all.keep_sections(new, old)
    assert "F1 0.78" in out and "filled in" not in out and out.startswith("# new") and out.endswith("new\n")
    assert out.index("## Tiled vs striped") < out.index("## Synthetic generator") and "x10" in out
    assert "4.5 s" in out and "4.4 s" not in out
