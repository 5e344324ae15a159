"""Verdicts as training scene folders: confirmed sites are positives of their classes, rejected ones
look-alikes, read by the same code training uses (``find_scenes``, ``read_truth``, ``tile_targets``)."""

from __future__ import annotations

import json

import numpy as np

from minewatch.classes import LOOKALIKE, UNLABELLED
from minewatch.datasets.labels import read_truth
from minewatch.datasets.scene_folder import find_scenes
from tests.catalog.campaign import farm_of, write_scan
from tests.catalog.conftest import review, run_cli
from tests.catalog.test_campaign import state
from tests.conftest import write_raster


def _with_rasters(folder):
    data = np.full((3, 32, 32), 100, dtype=np.uint8)
    write_raster(folder / "optical.tif", data, descriptions=["red", "green", "blue"])
    write_raster(folder / "thermal.tif", np.full((8, 8), 290.0, dtype=np.float32), gsd=2.0)
    return folder


def test_labels_from_verdicts(catalogue, tmp_path):
    scans = [_with_rasters(write_scan(tmp_path / f"flight-{d}", d)) for d in (1, 2, 3)]
    run_cli("catalog", "add", catalogue, *scans)
    sites = state(catalogue)
    ids = {n: farm_of(sites, n) for n in "ABCDEFG"}
    review(catalogue, ids["A"], "confirmed", "inspected")
    review(catalogue, ids["F"], "rejected", "container yard")
    review(catalogue, ids["C"], "unsure")
    out = tmp_path / "labels"

    text = run_cli("catalog", "labels", catalogue, "-o", out).output
    assert "wrote 3 scene folder(s)" in text and "without a verdict are left out of training" in text
    found = find_scenes([out])
    assert [f.folder.name for f in found] == ["flight-1", "flight-2", "flight-3"]
    for f in found:
        assert f.optical.resolve() == (tmp_path / f.folder.name / "optical.tif").resolve()
        assert f.thermal is not None and f.truth is not None
        truth = read_truth(f.truth)
        by_kind = truth[truth["class"] != UNLABELLED].groupby("kind")["site_id"].unique()
        assert list(by_kind["confirmed"]) == [ids["A"]] and list(by_kind["rejected"]) == [ids["F"]]
        assert sorted(truth.loc[truth["site_id"] == ids["A"], "class"]) == [
            "container_farm", "cooling_array", "heat_signature"]
        assert truth.loc[truth["class"] == "heat_signature", "dt_k"].tolist() == [12.0]
        assert truth.loc[truth["site_id"] == ids["F"], "class"].tolist() == [LOOKALIKE]
    meta = json.loads((out / "labels.json").read_text())
    pending = {s["folder"]: s["unreviewed"] for s in meta["scenes"]}
    assert pending["flight-2"] == sorted([ids["B"], ids["C"], ids["E"]])
    # sighted sites without a verdict are "unlabelled" ground: training leaves their windows out
    truth2 = read_truth(out / "flight-2" / "truth.geojson")
    assert sorted(truth2.loc[truth2["class"] == UNLABELLED, "site_id"]) == pending["flight-2"]

    # Only scenes where every sighted site has a verdict: none here; a rerun replaces the folder.
    text = run_cli("catalog", "labels", catalogue, "-o", out, "--complete-only").output
    assert "wrote 0 scene folder(s)" in text and text.count("skipped") == 3
    assert find_scenes_or_none(out) == []

    # Filters choose scenes; a scene whose raster is gone is skipped and said so.
    (tmp_path / "flight-3" / "optical.tif").unlink()
    text = run_cli("catalog", "labels", catalogue, "-o", out, "--since", "2025-06-01").output
    assert "wrote 2 scene folder(s)" in text and "optical raster not found" in text


def find_scenes_or_none(folder):
    return [d for d in folder.iterdir() if d.is_dir()]
