"""A scan with a dense model: sites outlined on their objects, containers counted, power estimated, the new
columns in GeoJSON, GeoPackage and QGIS; the same scan with a classifier-only model keeps window outlines.

The model is an exact "oracle" exported to ONNX like a trained one (same outputs and metadata): its masks are
the coverage of white roof, blue fans and heat in the input, so these tests check the scan, not training.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine

from minewatch.infer.evaluate import evaluate_sites
from minewatch.infer.power import mw_per_teu
from minewatch.infer.scan import ScanRequest, run_scan
from minewatch.infer.sites import OBJECT_COLUMNS, SITE_COLUMNS
from minewatch.model_meta import ModelMeta, ThermalInput

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.torch, pytest.mark.filterwarnings("ignore::UserWarning")]

CRS = "EPSG:32633"
X0, Y0 = 500_000.0, 5_000_200.0
GREEN, WHITE, BLUE = (60, 110, 50), (240, 240, 240), (30, 60, 230)
MEAN, STD = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)


def container_block(x: float, y: float, n: int, length: float, gap: float) -> list[shapely.Polygon]:
    return [shapely.box(X0 + x, Y0 - y - (j + 1) * 2.44 - j * gap, X0 + x + length, Y0 - y - j * (2.44 + gap))
            for j in range(n)]


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    """200 m of grass: farm A (six 40 ft containers, a fan bank, running: warm), farm B (four 20 ft, cold)."""
    folder = tmp_path_factory.mktemp("dense-scene")
    rng = np.random.default_rng(5)
    gsd, n = 0.25, 800
    rgb = (np.array(GREEN)[:, None, None] + rng.normal(0, 3, (3, n, n))).clip(1, 255)
    transform = Affine(gsd, 0, X0, 0, -gsd, Y0)
    a = container_block(40, 40, 6, 12.19, 1.5)
    b = container_block(130, 120, 4, 6.06, 2.0)
    fans = shapely.box(X0 + 52.19, shapely.union_all(a).bounds[1], X0 + 53.39, shapely.union_all(a).bounds[3])
    heat = shapely.union_all([*a, fans]).envelope.buffer(2.0, join_style="mitre")

    def paint(geom, colour):
        mask = rasterio.features.geometry_mask([geom], (n, n), transform, invert=True)
        rgb[:, mask] = np.array(colour)[:, None]

    for g in [*a, *b]:
        paint(g, WHITE)
    paint(fans, BLUE)
    with rasterio.open(folder / "optical.tif", "w", driver="GTiff", width=n, height=n, count=3, dtype="uint8",
                       crs=CRS, transform=transform, nodata=0, tiled=True, blockxsize=256, blockysize=256) as dst:
        dst.write(rgb.astype(np.uint8))
        for i, name in enumerate(("red", "green", "blue"), start=1):
            dst.set_band_description(i, name)
        dst.update_tags(MINEWATCH_SCENE_ID="dense-test", ACQUISITION_DATETIME="2025-06-01T10:00:00Z")
    kelvin = (295.0 + rng.normal(0, 0.2, (200, 200))).astype(np.float32)
    t_transform = Affine(1.0, 0, X0, 0, -1.0, Y0)
    kelvin[rasterio.features.geometry_mask([heat], (200, 200), t_transform, invert=True)] += 10.0
    with rasterio.open(folder / "thermal.tif", "w", driver="GTiff", width=200, height=200, count=1,
                       dtype="float32", crs=CRS, transform=t_transform, nodata=-9999.0) as dst:
        dst.write(kelvin[None])
        dst.update_tags(UNITS="kelvin")
    blocks = [("container_farm", "A", 6, True, shapely.union_all(a).envelope),
              ("cooling_array", "A", 6, True, fans), ("heat_signature", "A", 0, True, heat),
              ("container_farm", "B", 4, False, shapely.union_all(b).envelope)]
    gpd.GeoDataFrame([{"class": c, "site_id": s, "kind": "container_farm", "n_containers": k, "running": r,
                       "dt_k": 10.0 if c == "heat_signature" else 0.0} for c, s, k, r, _ in blocks],
                     geometry=[g for *_, g in blocks], crs=CRS).to_crs(4326).to_file(folder / "truth.geojson")
    return folder


class Oracle(torch.nn.Module):
    """Masks = coverage of white roof (containers), blue fans (cooling) and > 3 K excess (heat); class
    probability = the mask's maximum; outputs gated like minewatch.train.dense.GatedProbabilityModel."""

    def __init__(self, dense: bool) -> None:
        super().__init__()
        self.dense = dense
        self.register_buffer("thr", torch.tensor([0.5, 0.5, 0.5]))

    def forward(self, x):
        r, g, b = x[:, 0], x[:, 1], x[:, 2]
        white = torch.minimum(torch.minimum(r, g), b)
        green_min = min(GREEN) / 255
        container = torch.clamp((white - green_min) / (WHITE[0] / 255 - green_min), 0, 1)
        blue = b - torch.maximum(r, g)
        cooling = torch.clamp(blue / ((BLUE[2] - BLUE[1]) / 255), 0, 1)
        heat = torch.sigmoid(4 * (x[:, 3] * 10 - 3)) * x[:, 4]
        masks = torch.stack([container, cooling, heat], 1)
        probs = torch.amax(masks, dim=(2, 3))
        if not self.dense:
            return probs
        index = torch.nonzero((probs >= self.thr).any(dim=1)).reshape(-1)
        return probs, masks.index_select(0, index), index


def export_oracle(path: Path, dense: bool) -> Path:
    import warnings

    import onnx

    from minewatch.train.export import set_metadata

    meta = ModelMeta(model_version="test", backbone="mobilenet_v3_small",
                     classes=("container_farm", "cooling_array", "heat_signature"), profile="drone",
                     optical_bands=("red", "green", "blue"),
                     channels=("red", "green", "blue", "thermal_dt", "thermal_valid"), mean=MEAN, std=STD,
                     thresholds={"container_farm": 0.5, "cooling_array": 0.5, "heat_signature": 0.5}, gsd_m=0.5,
                     tile_m=32.0, stride_m=16.0, tile_px=64,
                     thermal=ThermalInput(background_m=100, background_gsd_m=25, dt_scale_k=10, dt_clip_k=40),
                     masks=("container", "cooling", "heat") if dense else (), mask_px=64 if dense else None)
    outputs = ["probs", "masks", "mask_index"] if dense else ["probs"]
    axes = {"input": {0: "n"}, "probs": {0: "n"}, **({"masks": {0: "p"}, "mask_index": {0: "p"}} if dense else {})}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Oracle(dense).eval(), (torch.zeros(2, 5, 64, 64),), str(path), dynamo=False,
                          opset_version=17, input_names=["input"], output_names=outputs, dynamic_axes=axes)
    proto = onnx.load(str(path))
    if dense:
        for d, v in zip(proto.graph.output[1].type.tensor_type.shape.dim[1:], (3, 64, 64), strict=True):
            d.ClearField("dim_param")
            d.dim_value = v
    set_metadata(proto, meta)
    onnx.save(proto, str(path))
    return path


@pytest.fixture(scope="module")
def scans(scene, tmp_path_factory):
    out = tmp_path_factory.mktemp("dense-scans")
    results = {}
    for name, dense in (("dense", True), ("classifier", False)):
        model = export_oracle(out / f"{name}.onnx", dense)
        target = out / name
        target.mkdir()
        results[name] = run_scan(ScanRequest(raster=scene / "optical.tif", thermal=scene / "thermal.tif",
                                             model=model, out=target / "sites.geojson", quicklook=target / "map.png",
                                             stride_m=16.0))
    return results


def test_sites_sit_on_their_objects_with_counts_and_power(scans, scene):
    sites = scans["dense"].sites.to_crs(CRS)
    assert list(sites.columns) == [*SITE_COLUMNS, "geometry"]
    assert len(sites) == 2 and (sites["outline"] == "objects").all()
    truth = gpd.read_file(scene / "truth.geojson").to_crs(CRS)
    a_truth = truth[truth.site_id == "A"].union_all()
    b_truth = truth[truth.site_id == "B"].union_all()
    a = sites.iloc[int(np.argmax(sites["n_containers"]))]
    b = sites.iloc[int(np.argmin(sites["n_containers"]))]
    for site, t, teu in ((a, a_truth, 12), (b, b_truth, 4)):
        iou = site.geometry.intersection(t).area / site.geometry.union(t).area
        assert iou > 0.75, iou
        assert site.geometry.difference(t.buffer(1.5)).area < 0.05 * site.geometry.area  # nothing off the objects
        assert abs(site["n_containers"] - teu) <= 0.15 * teu
    assert a["fan_area_m2"] == pytest.approx(1.2 * 6 * 2.44 + 5 * 1.5 * 1.2, rel=0.3)
    assert a["hot_area_m2"] > 0.7 * truth[truth["class"] == "heat_signature"].area.sum()
    assert a["est_power_mw"] == pytest.approx(a["n_containers"] * mw_per_teu(), rel=0.1)  # warm: running
    assert a["est_power_mw_low"] < a["est_power_mw"] < a["est_power_mw_high"]
    assert b["est_power_mw"] == 0 == b["est_power_mw_low"] < b["est_power_mw_high"]  # cold under thermal: idle
    assert "TEU" in scans["dense"].summary()
    # the evaluation agrees, and the classifier-only model outlines the same farms by their windows
    dense = evaluate_sites(scans["dense"].sites, truth).objects
    tiles = evaluate_sites(scans["classifier"].sites, truth).objects
    assert dense["n_matched"] == 2 and dense["count_ok_share"] == 1.0 and dense["dormant_called_idle"] == 1
    assert dense["iou_median"] > 0.75 > 0.5 > tiles["iou_median"]


def test_a_classifier_only_model_keeps_window_outlines(scans):
    sites = scans["classifier"].sites
    assert len(sites) >= 1 and (sites["outline"] == "tiles").all()
    assert sites[list(OBJECT_COLUMNS[:-1])].isna().all().all()


def test_the_new_columns_reach_geojson_and_qgis(scans):
    path = scans["dense"].out
    props = json.loads(path.read_text())["features"][0]["properties"]
    assert list(props)[-len(OBJECT_COLUMNS):] == list(OBJECT_COLUMNS)
    assert isinstance(props["n_containers"], int) and isinstance(props["est_power_mw"], float)
    back = gpd.read_file(path)
    assert back["n_containers"].dtype.kind == "i" and math.isclose(back["fan_area_m2"].iloc[0],
                                                                   props["fan_area_m2"])
    if subprocess.run(["/usr/bin/python3", "-c", "import qgis.core"], capture_output=True).returncode != 0:
        pytest.skip("python3-qgis is not installed")
    code = ("import sys\nfrom qgis.core import QgsApplication, QgsVectorLayer\n"
            "app = QgsApplication([], False); app.initQgis()\n"
            "layer = QgsVectorLayer(sys.argv[1], 'sites', 'ogr')\n"
            "print(layer.isValid(), ';'.join(f'{f.name()}:{f.typeName()}' for f in layer.fields()))\n"
            "app.exitQgis()\n")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": "/tmp"}
    proc = subprocess.run(["/usr/bin/python3", "-c", code, str(path)], capture_output=True, text=True, env=env,
                          timeout=120)
    valid, fields = proc.stdout.split()[-2:]
    types = dict(f.split(":") for f in fields.split(";"))
    assert valid == "True"
    assert types["n_containers"].lower().startswith("integer") and types["est_power_mw"].lower() == "real"
    assert all(c in types for c in OBJECT_COLUMNS)


def test_masks_lost_to_an_interruption_are_read_again(scans, scene, tmp_path, monkeypatch):
    """A resumed scan has the scores of windows scanned before the interruption but not their masks: those
    windows are read and run again, and the sites come out the same."""
    from minewatch.infer import scan as scan_mod

    real, calls = scan_mod._keep_masks, []

    def forget_first_batches(store, scored, probs, masks, index, meta):
        calls.append(len(index))  # windows with masks (positive ones)
        if len(calls) > 2:  # the masks of the first two batches with positive windows are lost
            real(store, scored, probs, masks, index, meta)

    monkeypatch.setattr(scan_mod, "_keep_masks", forget_first_batches)
    model = export_oracle(tmp_path / "dense.onnx", True)
    again = run_scan(ScanRequest(raster=scene / "optical.tif", thermal=scene / "thermal.tif", model=model,
                                 out=tmp_path / "sites.geojson", stride_m=16.0))
    assert calls[-1] == calls[0] + calls[1]  # after the scan, exactly the lost windows are read again
    first = scans["dense"].sites.drop(columns=["run_id", "created", "model", "model_sha256"])
    second = again.sites.drop(columns=["run_id", "created", "model", "model_sha256"])
    assert first.drop(columns="geometry").equals(second.drop(columns="geometry"))
    assert all(a.equals_exact(b, 1e-6) for a, b in zip(first.geometry, second.geometry, strict=True))


def test_a_scan_outlines_on_its_cores_but_never_more_threads_than_the_bound(scans, scene, tmp_path, monkeypatch):
    """The sites step runs on a thread per core the scan uses (model threads and reader), at most
    OUTLINE_THREADS whatever the machine (each outline's mosaic is bounded, so its memory is), with the same
    sites as the module's scan."""
    from minewatch.infer import sites as sites_mod
    from minewatch.infer.objects import OUTLINE_THREADS

    real, asked = sites_mod.build_sites, []

    def spy(*args, **kwargs):
        asked.append(kwargs["workers"])
        return real(*args, **kwargs)

    monkeypatch.setattr(sites_mod, "build_sites", spy)
    model = export_oracle(tmp_path / "dense.onnx", True)
    for threads in ("1", "15"):
        monkeypatch.setenv("MINEWATCH_THREADS", threads)
        again = run_scan(ScanRequest(raster=scene / "optical.tif", thermal=scene / "thermal.tif", model=model,
                                     out=tmp_path / f"sites-{threads}.geojson", stride_m=16.0))
        first = scans["dense"].sites.drop(columns=["run_id", "created", "model", "model_sha256", "geometry"])
        assert first.equals(again.sites.drop(columns=["run_id", "created", "model", "model_sha256", "geometry"]))
    assert asked == [2, OUTLINE_THREADS] and OUTLINE_THREADS == 2
