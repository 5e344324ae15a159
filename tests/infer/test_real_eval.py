"""The card's real-imagery figures: models compared on generated sites over the held-out orthophotos are scored
on the same scenes, generated once (skipped where ../shared/data/real is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from minewatch.infer import real_eval

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

DRONE_MODEL = Path(__file__).resolve().parents[2] / "models" / "minewatch-drone.onnx"


def test_models_compared_on_held_out_backgrounds_share_one_generation_of_scenes(real_data, tmp_path):
    scenes = tmp_path / "scenes"
    first = real_eval.background_recall(DRONE_MODEL, real_data, tmp_path / "a", count=1, scenes_dir=scenes)
    optical = scenes / f"scene_{real_eval.RECALL_SEED:06d}" / "optical.tif"
    written = optical.stat().st_mtime_ns
    second = real_eval.background_recall(DRONE_MODEL, real_data, tmp_path / "b", count=1, scenes_dir=scenes)
    assert optical.stat().st_mtime_ns == written  # reused, not generated again
    assert not (tmp_path / "b" / "scenes").exists()
    assert (tmp_path / "b" / "scans" / optical.parent.name / "sites.geojson").is_file()
    assert first.truth > 0 and (second.truth, second.found, second.candidates) == (
        first.truth, first.found, first.candidates)
