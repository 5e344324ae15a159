"""Tile-level evaluation (the model card's figures): totals agree with the per-scene error counts."""

from __future__ import annotations

import pytest

from minewatch.datasets.synth import generate_scenes
from minewatch.infer.predictor import load_predictor
from minewatch.infer.tile_eval import evaluate_tiles_by_scene


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    return generate_scenes(tmp_path_factory.mktemp("held"), seed=930_000, count=2, size=1024)


def test_per_scene_errors_add_up_to_the_class_figures(scenes) -> None:
    predictor = load_predictor()  # the committed model
    report, per_scene = evaluate_tiles_by_scene(predictor, scenes)
    assert [r["scene"] for r in per_scene] == [s.name for s in scenes]
    for name, s in report.items():
        missed = sum(r["missed"][name] for r in per_scene)
        false = sum(r["false"][name] for r in per_scene)
        tp = s["positives"] - missed
        assert s["windows"] > 50 and s["positives"] > 0, name
        assert s["recall"] == pytest.approx(tp / s["positives"])
        if tp + false:
            assert s["precision"] == pytest.approx(tp / (tp + false))


def test_error_table_lists_scenes_with_errors_and_the_total() -> None:
    from minewatch.train.model_card import error_lines

    rows = [{"scene": "scene_1", "conditions": "winter, snow", "missed": {"a": 2, "b": 0}, "false": {"a": 0, "b": 1}},
            {"scene": "scene_2", "conditions": "summer", "missed": {"a": 0, "b": 0}, "false": {"a": 0, "b": 0}}]
    lines = error_lines(rows, ["a", "b"])
    assert lines[2] == "| scene_1 | winter, snow | 2 / 0 | 0 / 1 |"
    assert lines[-1] == "| all 2 scenes | | 2 / 0 | 0 / 1 |" and len(lines) == 4  # scene_2 had no errors


def test_heldout_report_generates_missing_scenes_from_its_recipe_and_reuses_them(tmp_path) -> None:
    from minewatch.train.model_card import figure_lines, heldout_report

    predictor = load_predictor()
    report, [row] = heldout_report(predictor, tmp_path, 7100, 1, "winter")
    assert row["scene"] == "scene_007100" and row["conditions"].startswith("winter")
    optical = tmp_path / "scene_007100" / "optical.tif"
    stamp = optical.stat().st_mtime_ns
    again, _ = heldout_report(predictor, tmp_path, 7100, 1, "winter")
    assert optical.stat().st_mtime_ns == stamp and again == report  # reused, same figures
    lines = figure_lines(report)
    assert len(lines) == 2 + len(report) and lines[2].startswith(f"| {next(iter(report))} | ")


def test_windows_on_objects_hidden_by_thick_cloud_are_left_out(tmp_path) -> None:
    """A cloudy satellite scene: windows touching an object mostly under thick cloud are counted apart, and the
    windows scored plus those left out are every window of the scan grid."""
    import geopandas as gpd

    from minewatch.datasets.scene import SceneOpener
    from minewatch.datasets.scene_folder import SceneFiles
    from minewatch.datasets.tiling import plan_tiles
    from minewatch.infer.registry import committed_model

    recipe = tmp_path / "cloudy.yaml"
    recipe.write_text("extends: satellite-05m\nscene: {extent_m: 320}\n"
                      "atmosphere: {cloud_probability: 1.0, cloud_cover: [0.45, 0.55], cloud_scale_m: [80, 120]}\n"
                      "mining: {count: [3, 3], container_farm: {n_containers: [20, 40]}}\n", encoding="utf-8")
    [scene] = generate_scenes(tmp_path / "s", seed=23, count=1, recipe=recipe)
    assert gpd.read_file(scene / "truth.geojson")["cloud_share"].gt(0.5).any()
    predictor = load_predictor(committed_model("satellite"))
    meta = predictor.meta
    report, [row] = evaluate_tiles_by_scene(predictor, [scene])
    with SceneOpener.for_model(meta).open_folder(SceneFiles.from_folder(scene)) as opened:
        n_grid = len(plan_tiles(opened.grid, tile_m=meta.tile_m, stride_m=meta.stride_m, tile_px=meta.tile_px).tiles)
    assert row["unknown"] > 0
    assert report["container_farm"]["windows"] + row["unknown"] == n_grid
