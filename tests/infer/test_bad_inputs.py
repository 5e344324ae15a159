"""A table of bad inputs and ordinary mistakes: each gives one line (file, problem, fix), exit status 2, and
leaves every file that existed before exactly as it was (checksums), with nothing half-written beside it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.transform import from_origin
from shapely.geometry import Point, box

from minewatch.cli import cli
from minewatch.infer.predictor import default_model_path
from tests.conftest import write_raster

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """One small generated scene (optical, thermal, truth), copied into each case's folder."""
    from minewatch.datasets.synth import generate_scenes

    return generate_scenes(tmp_path_factory.mktemp("bad-inputs"), seed=4711, count=1, recipe="small")[0]


def _bounds(path: Path) -> tuple[tuple[float, float, float, float], object]:
    with rasterio.open(path) as src:
        return tuple(src.bounds), src.crs


def _fence(path: Path, geom, crs) -> Path:
    gpd.GeoDataFrame(geometry=[geom], crs=crs).to_file(path)
    return path


def _model_with(tmp: Path, edit: Callable[[dict], None] | None = None, *, drop: bool = False) -> Path:
    """A copy of the committed model with its metadata edited (or removed)."""
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(default_model_path()))
    props = {p.key: p for p in model.metadata_props}
    if drop:
        del model.metadata_props[:]
    else:
        meta = json.loads(props["minewatch"].value)
        edit(meta)
        props["minewatch"].value = json.dumps(meta)
    path = tmp / "edited.onnx"
    onnx.save(model, str(path))
    return path


def _damaged(tmp: Path, optical: Path) -> Path:
    """A copy whose second block holds garbage: the file opens and its last block reads, a window does not."""
    path = tmp / "damaged.tif"
    with rasterio.open(optical) as src:  # no overviews: a scan must read the full-resolution blocks
        profile = {**src.profile, "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate"}
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(src.read())
            dst.descriptions = src.descriptions
            dst.update_tags(**src.tags())
    with rasterio.open(path) as src:
        offset = int(src.get_tag_item("BLOCK_OFFSET_1_0", "TIFF", bidx=1))
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(os.urandom(4096))
    return path


def _scan(s: Path, *extra: str, out: str = "out/sites.geojson") -> list[str]:
    return ["scan", str(s / "optical.tif"), "--thermal", str(s / "thermal.tif"), "-o", str(s.parent / out), *extra]


def _scan_with(name: str, *options: str) -> Callable[[Path], list[str]]:
    """A case that only adds options to a scan of the test scene."""
    def build(t: Path) -> list[str]:
        return _scan(t / "scene", *options)
    build.__name__ = f"case_{name}"
    return build


# Each case: (name, builder(case folder with the scene in ./scene) -> CLI args, expected text in the one line).
def case_heatmap_on_optical(t: Path) -> list[str]:
    return _scan(t / "scene", "--heatmap", str(t / "scene" / "optical.tif"))


def case_heatmap_on_thermal(t: Path) -> list[str]:
    return _scan(t / "scene", "--heatmap", str(t / "scene" / "thermal.tif"))


def case_out_on_truth(t: Path) -> list[str]:
    return _scan(t / "scene", out="scene/truth.geojson")


def case_tiles_on_fence(t: Path) -> list[str]:
    b, crs = _bounds(t / "scene" / "optical.tif")
    fence = _fence(t / "fence.gpkg", box(*b), crs)
    return _scan(t / "scene", "--geofence", str(fence), "--tiles-out", str(fence))


def case_heatmap_on_model(t: Path) -> list[str]:
    model = t / "model.onnx"
    shutil.copy(default_model_path(), model)
    return _scan(t / "scene", "--model", str(model), "--heatmap", str(model))


def case_tiles_as_geojson(t: Path) -> list[str]:
    return _scan(t / "scene", "--tiles-out", str(t / "out" / "sites.geojson"))


def case_two_outputs_one_file(t: Path) -> list[str]:
    return _scan(t / "scene", "--tiles-out", str(t / "out" / "x.gpkg"), out="out/x.gpkg")


def case_tiles_as_shapefile(t: Path) -> list[str]:
    return _scan(t / "scene", "--tiles-out", str(t / "out" / "tiles.shp"))


def case_output_symlink_to_fence(t: Path) -> list[str]:
    b, crs = _bounds(t / "scene" / "optical.tif")
    fence = _fence(t / "fence.geojson", box(*b), crs)
    (t / "out" / "link.geojson").symlink_to(fence)
    return _scan(t / "scene", "--geofence", str(fence), out="out/link.geojson")


def case_output_hardlink_to_exclude(t: Path) -> list[str]:
    b, crs = _bounds(t / "scene" / "optical.tif")
    exclude = _fence(t / "exclude.gpkg", box(b[0], b[1], b[0] + 5, b[1] + 5), crs)
    os.link(exclude, t / "out" / "tiles.gpkg")
    return _scan(t / "scene", "--exclude", str(exclude), "--tiles-out", str(t / "out" / "tiles.gpkg"))


def case_existing_output(t: Path) -> list[str]:
    (t / "out" / "sites.geojson").write_text('{"type": "FeatureCollection", "features": []}')
    return _scan(t / "scene")


def case_output_is_a_folder(t: Path) -> list[str]:
    (t / "out" / "dir.geojson").mkdir()
    return _scan(t / "scene", out="out/dir.geojson")


def case_output_folder_missing(t: Path) -> list[str]:
    return _scan(t / "scene", out="nowhere/sites.geojson")


def case_output_not_utf8(t: Path) -> list[str]:
    return _scan(t / "scene", out=os.fsdecode(b"out/bad\xff.geojson"))


def case_raster_not_utf8(t: Path) -> list[str]:
    bad = t / os.fsdecode(b"scene\xff.tif")
    shutil.copy(t / "scene" / "optical.tif", bad)
    return ["scan", str(bad), "-o", str(t / "out" / "s.geojson")]


def case_landsat_like_300m(t: Path) -> list[str]:
    p = write_raster(t / "coarse.tif", np.full((3, 64, 64), 90, np.uint8), gsd=300.0, nodata=0)
    return ["scan", str(p), "-o", str(t / "out" / "s.geojson")]


def case_4_5m_raster(t: Path) -> list[str]:
    p = write_raster(t / "coarse.tif", np.full((3, 256, 256), 90, np.uint8), gsd=4.5, nodata=0)
    return ["scan", str(p), "-o", str(t / "out" / "s.geojson")]


def case_sparse_giant(t: Path) -> list[str]:
    p = t / "giant.tif"
    with rasterio.open(p, "w", driver="GTiff", width=300_000, height=300_000, count=3, dtype="uint8",
                       crs="EPSG:32633", transform=from_origin(500000, 4000000, 0.5, 0.5), tiled=True,
                       blockxsize=1024, blockysize=1024, sparse_ok=True, nodata=0):
        pass
    return ["scan", str(p), "-o", str(t / "out" / "s.geojson")]


def case_negative_floats(t: Path) -> list[str]:
    data = np.random.default_rng(0).normal(0, 5, (3, 200, 200)).astype("float32")
    p = write_raster(t / "neg.tif", data, descriptions=["red", "green", "blue"])
    return ["scan", str(p), "-o", str(t / "out" / "s.geojson")]


def case_sentinel2_swir_bands(t: Path) -> list[str]:
    data = np.full((3, 200, 200), 1200, np.uint16)
    p = write_raster(t / "s2.tif", data, descriptions=["B8A", "B11", "B12"], nodata=0)
    return ["scan", str(p), "-o", str(t / "out" / "s.geojson")]


def case_unknown_band_descriptions(t: Path) -> list[str]:
    p = write_raster(t / "dem.tif", np.full((3, 200, 200), 50, np.uint8), descriptions=["elevation", "slope", "aspect"])
    return ["scan", str(p), "-o", str(t / "out" / "s.geojson")]


def case_bands_wrong_count(t: Path) -> list[str]:
    return _scan(t / "scene", "--bands", "red,green")


def case_thermal_without_units(t: Path) -> list[str]:
    p = write_raster(t / "th.tif", np.full((1, 100, 100), 290, np.float32), gsd=0.8)
    return ["scan", str(t / "scene" / "optical.tif"), "--thermal", str(p), "-o", str(t / "out" / "s.geojson")]


def case_thermal_bad_unit_tag(t: Path) -> list[str]:
    p = write_raster(t / "th.tif", np.full((1, 100, 100), 290, np.float32), gsd=0.8, tags={"UNITS": "furlongs"})
    return ["scan", str(t / "scene" / "optical.tif"), "--thermal", str(p), "-o", str(t / "out" / "s.geojson")]


def case_thermal_units_flag(t: Path) -> list[str]:
    return _scan(t / "scene", "--thermal-units", "banana")


def case_thermal_three_bands(t: Path) -> list[str]:
    b, crs = _bounds(t / "scene" / "optical.tif")
    p = write_raster(t / "th.tif", np.full((3, 100, 100), 290, np.float32), crs=crs, origin=(b[0], b[3]), gsd=0.8,
                     tags={"UNITS": "K"})
    return ["scan", str(t / "scene" / "optical.tif"), "--thermal", str(p), "-o", str(t / "out" / "s.geojson")]


def case_thermal_elsewhere(t: Path) -> list[str]:
    p = write_raster(t / "th.tif", np.full((1, 100, 100), 290, np.float32), gsd=0.8, tags={"UNITS": "K"})
    return ["scan", str(t / "scene" / "optical.tif"), "--thermal", str(p), "-o", str(t / "out" / "s.geojson")]


def case_fence_elsewhere(t: Path) -> list[str]:
    fence = _fence(t / "far.geojson", box(10, 10, 11, 11), 4326)
    return _scan(t / "scene", "--geofence", str(fence))


def case_exclude_covers_scene(t: Path) -> list[str]:
    b, crs = _bounds(t / "scene" / "optical.tif")
    fence = _fence(t / "all.geojson", box(*b).buffer(50), crs)
    return _scan(t / "scene", "--exclude", str(fence))


def case_fence_smaller_than_a_tile(t: Path) -> list[str]:
    b, crs = _bounds(t / "scene" / "optical.tif")
    cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
    fence = _fence(t / "tiny.geojson", box(cx, cy, cx + 3, cy + 3), crs)
    return _scan(t / "scene", "--geofence", str(fence))


def case_fence_without_crs(t: Path) -> list[str]:
    fence = t / "f.shp"
    gpd.GeoDataFrame(geometry=[box(0, 0, 1, 1)]).to_file(fence)
    return _scan(t / "scene", "--geofence", str(fence))


def case_fence_of_points(t: Path) -> list[str]:
    fence = _fence(t / "points.geojson", Point(10, 10), 4326)
    return _scan(t / "scene", "--geofence", str(fence))


def case_fence_garbage(t: Path) -> list[str]:
    (t / "junk.geojson").write_bytes(b"\x00\x01 not json")
    return _scan(t / "scene", "--geofence", str(t / "junk.geojson"))


def case_raster_missing(t: Path) -> list[str]:
    return ["scan", str(t / "missing.tif"), "-o", str(t / "out" / "s.geojson")]


def case_raster_is_text(t: Path) -> list[str]:
    (t / "notes.tif").write_text("hello")
    return ["scan", str(t / "notes.tif"), "-o", str(t / "out" / "s.geojson")]


def case_raster_truncated(t: Path) -> list[str]:
    data = (t / "scene" / "optical.tif").read_bytes()
    (t / "cut.tif").write_bytes(data[: len(data) // 3])
    return ["scan", str(t / "cut.tif"), "-o", str(t / "out" / "s.geojson")]


def case_raster_damaged_block(t: Path) -> list[str]:
    return ["scan", str(_damaged(t, t / "scene" / "optical.tif")), "-o", str(t / "out" / "s.geojson")]


def case_raster_without_crs(t: Path) -> list[str]:
    p = t / "nocrs.tif"
    with rasterio.open(p, "w", driver="GTiff", width=64, height=64, count=3, dtype="uint8") as dst:
        dst.write(np.ones((3, 64, 64), dtype=np.uint8))
    return ["scan", str(p), "-o", str(t / "out" / "s.geojson")]


def case_raster_rotated(t: Path) -> list[str]:
    p = t / "rot.tif"
    from affine import Affine

    with rasterio.open(p, "w", driver="GTiff", width=64, height=64, count=3, dtype="uint8", crs="EPSG:32633",
                       transform=Affine(0.5, 0.1, 500000, 0.1, -0.5, 4000000)) as dst:
        dst.write(np.ones((3, 64, 64), dtype=np.uint8))
    return ["scan", str(p), "-o", str(t / "out" / "s.geojson")]


def case_raster_foreign_driver(t: Path) -> list[str]:
    p = t / "grid.asc"
    p.write_text("ncols 4\nnrows 4\nxllcorner 0\nyllcorner 0\ncellsize 1\n" + "1 2 3 4\n" * 4)
    return ["scan", str(p), "-o", str(t / "out" / "s.geojson")]


def case_model_not_onnx(t: Path) -> list[str]:
    (t / "model.onnx").write_bytes(b"this is not a model")
    return _scan(t / "scene", "--model", str(t / "model.onnx"))


def case_model_missing(t: Path) -> list[str]:
    return _scan(t / "scene", "--model", str(t / "nope.onnx"))


def case_model_negative_tile(t: Path) -> list[str]:
    return _scan(t / "scene", "--model", str(_model_with(t, lambda m: m.update(tile_px=-5))))


def case_model_one_class_three_outputs(t: Path) -> list[str]:
    def one_class(m: dict) -> None:
        m["classes"] = ["container_farm"]
        m["thresholds"] = {"container_farm": 0.5}

    return _scan(t / "scene", "--model", str(_model_with(t, one_class)))


def case_model_without_metadata(t: Path) -> list[str]:
    return _scan(t / "scene", "--model", str(_model_with(t, drop=True)))


def case_tiles_command_on_its_fence(t: Path) -> list[str]:
    b, crs = _bounds(t / "scene" / "optical.tif")
    fence = _fence(t / "fence.gpkg", box(*b), crs)
    return ["tiles", str(t / "scene" / "optical.tif"), "--geofence", str(fence), "-o", str(fence)]


def case_evaluate_missing_truth(t: Path) -> list[str]:
    (t / "out" / "s.geojson").write_text('{"type": "FeatureCollection", "features": []}')
    return ["evaluate", str(t / "out" / "s.geojson"), "--truth", str(t / "none.geojson")]


def case_synth_into_existing_scene(t: Path) -> list[str]:
    folder = t / "out" / "scene_000001"
    folder.mkdir()
    (folder / "truth.geojson").write_text('{"type": "FeatureCollection", "features": []}')
    return ["synth", "--out", str(t / "out"), "--seed", "1"]


def case_synth_size_too_large(t: Path) -> list[str]:
    return ["synth", "--out", str(t / "out"), "--size", "100000"]


CASES: list[tuple[Callable[[Path], list[str]], str]] = [
    (case_heatmap_on_optical, "--heatmap is the optical raster"),
    (case_heatmap_on_thermal, "--heatmap is the thermal raster"),
    (case_out_on_truth, "the output exists"),
    (case_tiles_on_fence, "--tiles-out is the geofence"),
    (case_heatmap_on_model, "--heatmap is written as a Cloud Optimized GeoTIFF"),
    (case_tiles_as_geojson, "--tiles-out is written as tile scores (GeoPackage)"),
    (case_two_outputs_one_file, "-o and --tiles-out name the same file"),
    (case_tiles_as_shapefile, "--tiles-out is written as tile scores (GeoPackage)"),
    (case_output_symlink_to_fence, "-o is the geofence"),
    (case_output_hardlink_to_exclude, "--tiles-out is the exclude fence"),
    (case_existing_output, "the output exists"),
    (case_output_is_a_folder, "is a directory"),
    (case_output_folder_missing, "the output folder does not exist"),
    (case_output_not_utf8, "not valid UTF-8"),
    (case_raster_not_utf8, "not valid UTF-8"),
    (case_landsat_like_300m, "pixels of 300 m"),
    (case_4_5m_raster, "pixels of 4.5 m"),
    (case_sparse_giant, "more than --max-tiles"),
    (_scan_with("max_tiles", "--max-tiles", "3"), "more than --max-tiles 3"),
    (_scan_with("stride_tiny", "--stride-m", "0.001"), "--stride-m 0.001 m would read"),
    (_scan_with("stride_zero", "--stride-m", "0"), "--stride-m 0.0 is not a finite number"),
    (_scan_with("stride_nan", "--stride-m", "nan"), "--stride-m nan is not a finite number"),
    (_scan_with("stride_inf", "--stride-m", "inf"), "--stride-m inf is not a finite number"),
    (_scan_with("stride_gaps", "--stride-m", "100"), "leaves gaps"),
    (_scan_with("batch_zero", "--batch", "0"), "Invalid value for '--batch'"),
    (_scan_with("scale_negative", "--scale", "-1"), "--scale -1.0 is not a positive number"),
    (case_negative_floats, "negative values are not reflectance"),
    (case_sentinel2_swir_bands, "missing red, green, blue"),
    (case_unknown_band_descriptions, "do not say which bands"),
    (case_bands_wrong_count, "--bands names 2 band(s), the raster has 3"),
    (case_thermal_without_units, "does not say its units"),
    (case_thermal_bad_unit_tag, "UNITS tag 'furlongs' is not a temperature unit"),
    (case_thermal_units_flag, "unknown temperature unit 'banana'"),
    (case_thermal_three_bands, "thermal raster has 3 bands"),
    (case_thermal_elsewhere, "thermal raster does not overlap"),
    (case_fence_elsewhere, "geofence does not overlap the scene"),
    (case_exclude_covers_scene, "no window of the scene is kept by the fences"),
    (case_fence_smaller_than_a_tile, "no window of the scene is kept by the fences"),
    (case_fence_without_crs, "geofence file has no CRS"),
    (case_fence_of_points, "geofence file holds no polygons"),
    (case_fence_garbage, "cannot read the geofence file"),
    (case_raster_missing, "optical raster not found"),
    (case_raster_is_text, "cannot read the optical raster"),
    (case_raster_truncated, "optical raster"),
    (case_raster_damaged_block, "the file is damaged there"),
    (case_raster_without_crs, "no coordinate reference system"),
    (case_raster_rotated, "is rotated"),
    (case_raster_foreign_driver, "which minewatch does not read"),
    (case_model_not_onnx, "not a valid ONNX model"),
    (case_model_missing, "model file not found"),
    (case_model_negative_tile, "model metadata is invalid"),
    (case_model_one_class_three_outputs, "its metadata lists 1 class(es)"),
    (case_model_without_metadata, "not a minewatch model"),
    (case_tiles_command_on_its_fence, "--tiles-out is the geofence"),
    (case_evaluate_missing_truth, "labels file not found"),
    (case_synth_into_existing_scene, "1 scene folder(s) exist and would be replaced"),
    (case_synth_size_too_large, "size 100,000 px would need about"),
]


def _snapshot(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[os.fsencode(p.relative_to(root)).decode("utf-8", "backslashreplace")] = hashlib.sha256(
                p.read_bytes()).hexdigest()
    return out


def _one_line(result) -> str:
    text = result.stderr if result.stderr else result.output
    # log lines aside: with -v they carry their level; the scan's announcement of the model it chose for the raster
    # ("model minewatch-drone.onnx chosen for ...") precedes failures found while scanning
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith(("WARNING", "INFO", "model "))]
    assert len(lines) == 1, text
    return lines[0]


@pytest.mark.parametrize(("build", "expect"), CASES, ids=[c[0].__name__[5:] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(build, expect, base, tmp_path):
    shutil.copytree(base, tmp_path / "scene")
    (tmp_path / "out").mkdir()
    args = build(tmp_path)
    before = _snapshot(tmp_path)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    line = _one_line(result)
    assert line.startswith("minewatch: error: ") and "Fix:" in line and "Traceback" not in result.output
    assert expect in line, line
    after = _snapshot(tmp_path)
    if build is case_raster_damaged_block:  # found mid-scan: the journal of the windows done stays, for --resume
        after.pop("out/.s.geojson.journal")
    assert after == before  # nothing changed, nothing added (no output, lock or temporary file)


def test_the_table_holds_at_least_40_cases():
    assert len(CASES) >= 40


def test_a_second_scan_of_the_same_outputs_is_refused(base, tmp_path):
    out = tmp_path / "sites.geojson"
    with open(tmp_path / ".sites.geojson.lock", "w") as held:
        held.write("12345")
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = CliRunner().invoke(cli, ["scan", str(base / "optical.tif"), "-o", str(out)])
    assert result.exit_code == 2
    assert "another minewatch scan (pid 12345) is writing these outputs" in _one_line(result)
    assert not out.exists()


def test_resume_refuses_a_raster_replaced_at_the_same_path(base, tmp_path):
    """The first scan dies on a damaged block and leaves its journal; the raster is then replaced by a
    good one at the same path: --resume must refuse (not mix the old windows into the new scene)."""
    shutil.copytree(base, tmp_path / "scene")
    damaged = _damaged(tmp_path, tmp_path / "scene" / "optical.tif")
    out = tmp_path / "sites.geojson"
    first = CliRunner().invoke(cli, ["scan", str(damaged), "-o", str(out), "--batch", "1"])
    assert first.exit_code == 2 and "damaged" in _one_line(first)
    assert (tmp_path / ".sites.geojson.journal").is_file()
    shutil.copy(tmp_path / "scene" / "optical.tif", damaged)
    again = CliRunner().invoke(cli, ["scan", str(damaged), "-o", str(out), "--resume"])
    assert again.exit_code == 2
    assert "cannot resume: the optical raster changed since the interrupted scan" in _one_line(again)
    fresh = CliRunner().invoke(cli, ["scan", str(damaged), "-o", str(out), "--overwrite"])
    assert fresh.exit_code == 0, fresh.output


def test_a_full_disk_is_a_one_line_error_naming_the_file(base, tmp_path, small_disk):
    """Outputs on a tiny tmpfs: the scan fails with the path and leaves no partial output there."""
    out = tmp_path / "sites.geojson"
    result = CliRunner().invoke(cli, ["scan", str(base / "optical.tif"), "-o", str(out), "--quicklook",
                                      str(small_disk / "map.png")])
    assert result.exit_code == 2
    line = _one_line(result)
    assert "map.png" in line and "no space left on the device" in line
    assert not out.exists() and [p.name for p in small_disk.iterdir()] == []


def test_internal_errors_say_please_report():
    code = ("import sys; sys.argv = ['minewatch', 'info']; import minewatch.info as i; "
            "i.describe = lambda m: 1 / 0; from minewatch.cli import main; main()")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "internal error: ZeroDivisionError" in proc.stderr and "please report" in proc.stderr
