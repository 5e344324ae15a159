"""Evaluation of outlines, counts and power on hand-made geometries."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from conftest import UTM, X0, Y0

from minewatch.infer.evaluate import evaluate_sites
from minewatch.infer.object_eval import summarise
from minewatch.infer.power import mw_per_teu


def block(x: float, y: float, n: int, length: float = 12.19, gap: float = 1.0) -> shapely.Polygon:
    w = n * 2.44 + (n - 1) * gap
    return shapely.box(X0 + x, Y0 - y - w, X0 + x + length, Y0 - y)


def truth_frame() -> gpd.GeoDataFrame:
    a1, a2 = block(0, 0, 5), block(0, 20, 5)  # farm A: two blocks of five 40 ft containers = 20 TEU, running
    b = block(200, 0, 4, length=6.06)  # farm B: four 20 ft containers = 4 TEU, dormant
    heat = shapely.union(a1, a2).envelope.buffer(2.0, join_style="mitre")
    rows = [("container_farm", "A", "container_farm", 5, True, a1),
            ("container_farm", "A", "container_farm", 5, True, a2),
            ("heat_signature", "A", "container_farm", 0, True, heat),
            ("container_farm", "B", "container_farm", 4, False, b),
            ("heat_signature", "H", "hidden_farm", 0, True, shapely.box(X0 + 400, Y0 - 10, X0 + 410, Y0)),
            ("lookalike", "L", "truck_depot", 0, False, shapely.box(X0 + 600, Y0 - 50, X0 + 650, Y0))]
    return gpd.GeoDataFrame([dict(zip(("class", "site_id", "kind", "n_containers", "running"), r[:5], strict=True))
                             for r in rows], geometry=[r[5] for r in rows], crs=UTM)


def sites(*rows: dict) -> gpd.GeoDataFrame:
    geoms = [r.pop("geometry") for r in rows]
    data = [{"site_id": f"s{i + 1}", "rank": i + 1, "score": 0.9 - 0.1 * i, "classes": "container_farm", **r}
            for i, r in enumerate(rows)]
    return gpd.GeoDataFrame(data, geometry=geoms, crs=UTM).to_crs(4326)


def test_iou_count_and_power_of_matched_sites():
    truth = truth_frame()
    site_a = truth[truth.site_id == "A"].union_all()
    b = truth[truth.site_id == "B"].geometry.iloc[0]
    cand = sites(
        # A, outlined on its objects a little loosely: IoU = area(A) / area(A buffered 1 m)
        {"geometry": site_a.buffer(1.0, join_style="mitre"), "n_containers": 22, "est_power_mw": 8.0,
         "est_power_mw_low": 5.0, "est_power_mw_high": 12.0, "outline": "objects"},
        # B as a window block: matched, far larger than its containers, no count
        {"geometry": shapely.box(X0 + 192, Y0 - 64, X0 + 256, Y0), "n_containers": None, "est_power_mw": None,
         "est_power_mw_low": None, "est_power_mw_high": None, "outline": "tiles"},
    )
    report = evaluate_sites(cand, truth)
    o = report.objects
    assert o["n_truth_sites"] == 3 and o["n_matched"] == 2  # the hidden farm is missed
    by_site = {s["site_id"]: s for s in o["sites"]}
    expected_a = site_a.area / site_a.buffer(1.0, join_style="mitre").area
    assert by_site["A"]["iou"] == pytest.approx(expected_a, rel=1e-3)
    assert by_site["B"]["iou"] == pytest.approx(b.area / (64 * 64), rel=1e-3)
    assert by_site["H"]["iou"] is None
    assert o["iou_median"] == pytest.approx(np.median([expected_a, b.area / 64**2]), rel=1e-3)
    assert by_site["A"]["teu_true"] == 20 and by_site["B"]["teu_true"] == 4
    assert o["farms"] == 2 and o["count_ok_share"] == 0.5  # A within 20 % (22 vs 20), B has no count
    assert o["count_rel_error_median"] == np.inf or o["count_rel_error_median"] > 0.1
    assert by_site["A"]["power_true_mw"] == pytest.approx(20 * mw_per_teu())
    assert o["running_farms"] == 1 and o["power_rel_error_median"] == pytest.approx(abs(8.0 - 7.8) / 7.8)
    assert o["power_in_range_share"] == 1.0
    assert o["dormant_farms"] == 1 and o["dormant_called_idle"] == 0
    assert "median IoU" in report.table() and "counted within 20 %" in report.table()
    assert report.to_dict()["objects"]["farms"] == 2


def test_truth_power_is_taken_from_the_truth_when_it_has_one():
    truth = truth_frame().query("site_id == 'A'")
    truth["power_mw"] = np.where(truth["class"] == "container_farm", 1.5, np.nan)
    cand = sites({"geometry": truth[truth.site_id == "A"].union_all(), "n_containers": 20, "est_power_mw": 3.0,
                  "est_power_mw_low": 2.0, "est_power_mw_high": 4.0, "outline": "objects"})
    o = evaluate_sites(cand, truth).objects
    a = next(s for s in o["sites"] if s["site_id"] == "A")
    assert a["power_true_mw"] == pytest.approx(3.0) and a["iou"] == pytest.approx(1.0)
    assert o["power_rel_error_median"] == pytest.approx(0.0) and o["count_ok_share"] == 1.0


def test_no_candidates_and_summaries_over_scenes():
    o = evaluate_sites(sites(), truth_frame()).objects
    assert o["n_matched"] == 0 and o["iou_median"] is None
    assert o["farms"] == 2 and o["count_ok_share"] == 0.0  # missed farms are wrong counts, not left out
    merged = summarise([{"iou": 0.8, "kind": "container_farm", "teu_true": 10, "teu_est": 9,
                         "power_true_mw": 3.9, "power_est_mw": 3.5, "power_low_mw": 2, "power_high_mw": 6,
                         "running": True},
                        {"iou": 0.4, "kind": "hidden_farm", "teu_true": 0.0}, {"iou": None}])
    assert merged["iou_median"] == pytest.approx(0.6) and merged["count_ok_share"] == 1.0
    assert merged["iou_by_kind"]["hidden_farm"]["iou_median"] == 0.4


def test_model_card_section_from_full_scans_of_heldout_scenes(tmp_path):
    from minewatch.datasets.synth import generate_scenes
    from minewatch.infer.predictor import default_model_path
    from minewatch.train.model_card import heldout_objects, object_card_lines

    scenes = generate_scenes(tmp_path / "scenes", seed=7000, count=1, size=1024)
    o = heldout_objects(default_model_path(), scenes, tmp_path / "scans")
    assert o["n_truth_sites"] >= 1 and {s["scene"] for s in o["sites"]} == {"scene_007000"}
    lines = object_card_lines(o, dense=False)
    assert lines[0].startswith("| figure |") and any("median polygon IoU" in ln for ln in lines)
    assert any("no dense head" in ln for ln in lines)
    assert any("counted within 20 %" in ln for ln in object_card_lines(o, dense=True))


def test_card_table_sets_this_model_beside_the_previous_one():
    from minewatch.train.model_card import object_card_lines

    o = evaluate_sites(sites(), truth_frame()).objects
    lines = object_card_lines(o, dense=True, old=o, old_dense=False)
    assert lines[0] == "| figure | this model | previous model |"
    row = next(ln for ln in lines if ln.startswith("| container farms counted within 20 %"))
    assert row.split("|")[2].strip() == "0% of 2" and row.split("|")[3].strip() == ""
    assert any(ln.startswith("| containers, power |  | no dense head") for ln in lines)


def test_without_counts_the_report_says_so_instead_of_infinite_errors():
    """Window outlines (a classifier-only model) carry no count: one line saying why, not 'median error inf'."""
    from minewatch.infer.evaluate import object_lines

    truth = truth_frame()
    blocks = sites(*({"geometry": truth[truth.site_id == s].union_all().buffer(20.0), "n_containers": None,
                      "est_power_mw": None, "est_power_mw_low": None, "est_power_mw_high": None,
                      "outline": "tiles"} for s in ("A", "B")))
    lines = object_lines(evaluate_sites(blocks, truth).objects)
    assert any(ln.startswith("containers, power: no matched site carries a count") for ln in lines)
    assert not any("inf" in ln for ln in lines)
    counted = object_lines(evaluate_sites(sites({"geometry": truth[truth.site_id == "A"].union_all(),
                                                 "n_containers": 20, "est_power_mw": 7.8, "est_power_mw_low": 5.0,
                                                 "est_power_mw_high": 11.0, "outline": "objects"}), truth).objects)
    assert any(ln.startswith("containers: 1/2 farms counted within 20 %") for ln in counted)
