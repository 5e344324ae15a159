"""Training configs: several scene sets per split, and the checks that keep validation honest."""

from __future__ import annotations

from pathlib import Path

import pytest

from minewatch.errors import UserError
from minewatch.train import ddp
from minewatch.train.config import GeneratedScenes, load_train_config
from minewatch.train.prepare import scene_folders

pytestmark = pytest.mark.torch


PRESETS = sorted((Path(__file__).resolve().parents[2] / "configs" / "train").glob("*.yaml"))


def _preset(name: str):
    cfg, _ = load_train_config(next(p for p in PRESETS if p.stem == name))
    return cfg


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_every_shipped_training_preset_validates_under_its_own_name(path):
    """A preset that no longer validates (a renamed key, a broken ``extends``) fails here, not an hour into a run."""
    cfg, _ = load_train_config(path)
    assert cfg.name == path.stem


def test_dense_fine_adds_only_the_stride_1_level_to_dense():
    fine, dense = _preset("dense-fine"), _preset("dense")
    assert fine.model.decoder_fine_channels > 0 == dense.model.decoder_fine_channels
    assert fine.model.model_dump(exclude={"decoder_fine_channels"}) == dense.model.model_dump(
        exclude={"decoder_fine_channels"})


def _make_stages(target: str) -> tuple[list[str], list[Path], Path]:
    """A Makefile target's training stages: each ``minewatch train``'s --config and --out, in order, and the
    checkpoint its ``minewatch export`` line exports."""
    recipe = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    lines = recipe[recipe.index(f"\n{target}:"):].split("\n\n")[0].splitlines()
    steps = [line.split() for line in lines if "minewatch train" in line]
    exported = [line.split() for line in lines if "minewatch export" in line][0]
    return ([s[s.index("--config") + 1] for s in steps], [Path(s[s.index("--out") + 1]) for s in steps],
            Path(exported[exported.index("export") + 1]))


def test_the_dense_stages_continue_each_other_as_make_model_dense_runs_them():
    """Stages two and three of ``make model-dense`` start from the stage before's checkpoint and scenes, train
    everything at a lower rate each, and the Makefile runs the stages into the folders the presets name (a
    renamed folder would start from nothing)."""
    dense, joint, polish = _preset("dense"), _preset("dense-joint"), _preset("dense-polish")
    assert dense.model.freeze_classifier and not joint.model.freeze_classifier and not polish.model.freeze_classifier
    assert joint.model.masks == dense.model.masks == polish.model.masks
    assert polish.optim.lr < joint.optim.lr < dense.optim.lr
    assert joint.early_stopping.select_by == polish.early_stopping.select_by == "map+masks"  # masks count too
    stage_one = joint.model.init.parent
    assert joint.model.init.name == polish.model.init.name == "best.pt"
    assert joint.data.data_dir == polish.data.data_dir == stage_one / "data"
    assert joint.data.model_dump(exclude={"data_dir"}) == dense.data.model_dump(exclude={"data_dir"})
    assert polish.data == joint.data
    configs, outs, exported = _make_stages("model-dense")
    assert configs == ["configs/train/dense.yaml", "configs/train/dense-joint.yaml", "configs/train/dense-polish.yaml"]
    assert outs[:2] == [stage_one, polish.model.init.parent]
    assert exported == outs[2] / "best.pt"  # the last stage is the model


def test_the_satellite_stages_continue_each_other_as_make_model_satellite_runs_them():
    """Stage two of ``make model-satellite`` starts from stage one's kept epoch at a lower rate, on the same scenes
    and validation sets, and the Makefile runs stage one into the folder stage two starts from and exports the
    last stage."""
    first, polish = _preset("satellite"), _preset("satellite-polish")
    assert polish.data == first.data and polish.model.model_dump(exclude={"init"}) == first.model.model_dump(
        exclude={"init"})
    assert polish.optim.lr < first.optim.lr and polish.model.init.name == "best.pt"
    configs, outs, exported = _make_stages("model-satellite")
    assert configs == ["configs/train/satellite.yaml", "configs/train/satellite-polish.yaml"]
    assert outs[0] == polish.model.init.parent
    assert exported == outs[1] / "best.pt"


def test_the_drone_stages_continue_each_other_as_make_model_runs_them():
    """Stage two of ``make model`` starts from stage one's kept epoch at a lower rate, on stage one's scenes, real
    negatives and validation sets, and the Makefile runs stage one into the folder stage two starts from and
    exports the last stage."""
    first, polish = _preset("default"), _preset("default-polish")
    stage_one = polish.model.init.parent
    assert polish.data.data_dir == stage_one / "data" and first.data.data_dir is None  # None: <run folder>/data
    assert polish.data.model_dump(exclude={"data_dir"}) == first.data.model_dump(exclude={"data_dir"})
    assert polish.model.model_dump(exclude={"init"}) == first.model.model_dump(exclude={"init"})
    assert polish.optim.lr < first.optim.lr and polish.model.init.name == "best.pt"
    configs, outs, exported = _make_stages("model")
    assert configs == ["configs/train/default.yaml", "configs/train/default-polish.yaml"]
    assert outs[0] == stage_one
    assert exported == outs[1] / "best.pt"


def _write(tmp_path, data: str):
    path = tmp_path / "cfg.yaml"
    path.write_text("data:\n" + data)
    return path


def test_a_split_may_list_several_generated_sets_and_folders(tmp_path):
    cfg, _ = load_train_config(_write(tmp_path, f"""
  train_scenes:
    - {{seed: 1000, count: 4}}
    - {{seed: 3000, count: 2, recipe: winter}}
    - {tmp_path / 'mine'}
  val_scenes: {{seed: 5000, count: 2}}
"""))
    first, second, folder = cfg.data.train_scenes
    assert first == GeneratedScenes(seed=1000, count=4) and second.recipe == "winter"
    assert folder == tmp_path / "mine"


@pytest.mark.parametrize("val, ok", [
    ("{seed: 1003, count: 2}", False),                # repeats seeds of the first training set
    ("{seed: 3001, count: 1, recipe: winter}", False),  # ... of the second
    ("{seed: 3001, count: 1}", True),                 # same seed, other recipe: another scene
    ("{seed: 5000, count: 2}", True),
])
def test_validation_seeds_must_differ_from_every_training_set(tmp_path, val, ok):
    path = _write(tmp_path, f"""
  train_scenes: [{{seed: 1000, count: 4}}, {{seed: 3000, count: 2, recipe: winter}}]
  val_scenes: {val}
""")
    if ok:
        load_train_config(path)
    else:
        with pytest.raises(UserError, match="overlap training seeds"):
            load_train_config(path)


def test_the_demo_seed_and_empty_splits_are_refused_in_any_set(tmp_path):
    with pytest.raises(UserError, match="demo seed"):
        load_train_config(_write(tmp_path, """
  train_scenes: [{seed: 1000, count: 4}, {seed: 2020, count: 10, recipe: winter}]
  val_scenes: {seed: 5000, count: 2}
"""))
    with pytest.raises(UserError, match="data.val_scenes is empty"):
        load_train_config(_write(tmp_path, "  train_scenes: [{seed: 1000, count: 4}]\n  val_scenes: []\n"))


def test_scene_folders_of_a_mixed_split_keep_their_order(tmp_path):
    own = tmp_path / "own_scene"
    src = [GeneratedScenes(seed=40, count=2, size=128), own,
           GeneratedScenes(seed=40, count=1, size=128, recipe="winter")]
    folders = scene_folders(src, tmp_path / "data", "drone", ddp.DistInfo())
    assert folders[2] == own and [f.name for f in folders] == ["scene_000040", "scene_000041", "own_scene",
                                                                "scene_000040"]
    assert folders[0].parent != folders[3].parent  # one cache folder per recipe
    assert all((f / "scene.json").is_file() for f in folders if f != own)
