"""The torch dataset over scene folders: targets once, lazy handles, balanced sampling, band checks."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from tiny_scenes import make_scene

from minewatch.datasets.labels import LabelRule
from minewatch.datasets.model_input import InputSpec
from minewatch.datasets.profiles import load_profile
from minewatch.datasets.scene import SceneOpener
from minewatch.datasets.scene_folder import find_scenes
from minewatch.errors import UserError
from minewatch.model_meta import ThermalInput
from minewatch.train.dataset import (
    BalancedSampler,
    TileDataset,
    check_bands,
    expected_positive_rate,
    index_scenes,
    normalisation_stats,
    sample_weights,
)
from minewatch.train.loop import train_from_config

pytestmark = pytest.mark.torch

BANDS = ("red", "green", "blue")
THERMAL = ThermalInput(background_m=100, background_gsd_m=25, dt_scale_k=10, dt_clip_k=40)


def _reader():
    return SceneOpener(load_profile("drone"), 0.5, 100.0, 25.0)


def _index(folder):
    return index_scenes(find_scenes([folder]), _reader(), tile_m=16, stride_m=16, tile_px=32, bands=BANDS,
                        rule=LabelRule())


def test_dataset_reads_windows_with_targets_and_pickles_without_handles(tiny_scenes):
    index = _index(tiny_scenes / "train")
    assert len(index) == 3 and all(len(s.tiles) == 36 for s in index)
    mean, std = normalisation_stats(index, _reader(), BANDS, n_tiles=20, seed=0)
    spec = InputSpec(BANDS, mean, std, THERMAL, 32)
    ds = TileDataset(index, spec, _reader(), cache_mb=10)
    assert len(ds) == 108 and ds.targets.shape == (108, 3)
    assert ds.targets[:, 0].sum() > 0 and ds.targets[:, 1].sum() > 0 and ds.targets[:, 2].sum() > 0
    x, y = ds[0]
    assert x.shape == (5, 32, 32) and y.shape == (3,)
    assert float(x[4].mean()) > 0.9  # thermal_valid: these scenes have thermal (its grid is offset)
    # farm windows are warm: their thermal excess beats the background's
    farm = int(np.flatnonzero(ds.targets[:, 2])[0])
    assert float(ds[farm][0][3].max()) > float(ds[int(np.flatnonzero(ds.targets.sum(1) == 0)[0])][0][3].max())
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._scenes == {} and clone._cache == {}
    assert np.array_equal(clone[5][0].numpy(), ds[5][0].numpy())
    ds.close()
    clone.close()


def test_normalisation_stats_match_the_pixels(tiny_scenes):
    index = _index(tiny_scenes / "val")
    mean, std = normalisation_stats(index, _reader(), BANDS, n_tiles=10_000, seed=0)
    with _reader().open_folder(index[0].files, thermal=False) as scene:
        pixels = np.concatenate([scene.read_optical(t, BANDS).reshape(3, -1) for t in index[0].tiles], axis=1)
    with _reader().open_folder(index[1].files, thermal=False) as scene:
        more = np.concatenate([scene.read_optical(t, BANDS).reshape(3, -1) for t in index[1].tiles], axis=1)
    allpix = np.concatenate([pixels, more], axis=1)
    assert np.allclose(mean, np.nanmean(allpix, axis=1), atol=1e-5)
    assert np.allclose(std, np.nanstd(allpix, axis=1), atol=1e-5)


def test_band_count_mismatch_is_a_user_error_naming_the_bands(tmp_path):
    make_scene(tmp_path / "rgbn", 5, bands=4, n_sites=1)
    with pytest.raises(UserError, match=r"4 optical band\(s\) \(red, green, blue, nir\).*takes 3 \(red, green, blue\)"):
        _index(tmp_path / "rgbn")
    with pytest.raises(UserError, match="extra nir"):
        check_bands(("red", "green", "blue", "nir"), BANDS, path="x", exact=True)


def test_training_on_scenes_of_another_band_count_fails_before_training(tmp_path):
    make_scene(tmp_path / "train" / "a", 5, bands=4, n_sites=1)
    make_scene(tmp_path / "val" / "b", 6, bands=4, n_sites=1)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"data:\n  train_scenes: [{tmp_path / 'train'}]\n  val_scenes: [{tmp_path / 'val'}]\n"
                   "model: {tile_m: 16}\n")
    with pytest.raises(UserError, match="band mismatch.*nir"):
        train_from_config(cfg, out=tmp_path / "run", device="cpu")
    assert not (tmp_path / "run" / "last.pt").exists()


def test_balanced_weights_favour_rare_classes():
    targets = np.zeros((100, 3), np.uint8)
    targets[:5, 0] = 1  # rare
    targets[5:35, 1] = 1
    w = sample_weights(targets, 1.0)
    rate = expected_positive_rate(targets, w)
    assert rate[0] == pytest.approx(1 / 3) and rate[1] == pytest.approx(1 / 3) and rate[2] == 0
    assert np.allclose(expected_positive_rate(targets, sample_weights(targets, 0.0)), [0.05, 0.30, 0.0])


def test_sampler_is_epoch_seeded_and_shards_one_sequence():
    w = np.ones(50)
    s = BalancedSampler(w, num_samples=40, seed=3)
    s.set_epoch(1)
    first = list(s)
    assert list(s) == first and len(first) == 40
    s.set_epoch(2)
    assert list(s) != first
    s.set_epoch(1)
    ranks = [BalancedSampler(w, num_samples=40, seed=3, rank=r, world_size=2) for r in (0, 1)]
    for r in ranks:
        r.set_epoch(1)
    a, b = list(ranks[0]), list(ranks[1])
    assert len(a) == len(b) == 20
    merged = [x for pair in zip(a, b, strict=True) for x in pair]
    assert merged == first


def test_prefill_reads_the_same_windows_in_parallel(tiny_scenes):
    index = _index(tiny_scenes / "val")
    spec = InputSpec(BANDS, (0.4,) * 3, (0.1,) * 3, THERMAL, 32)
    filled = TileDataset(index, spec, _reader(), cache_mb=50)
    assert filled.prefill(2, parallel_min_px=0)
    assert len(filled._cache) == len(filled)
    lazy = TileDataset(index, spec, _reader())
    for k in (0, 17, len(lazy) - 1):
        assert np.array_equal(filled[k][0].numpy(), lazy[k][0].numpy())
    tiny_cache = TileDataset(index, spec, _reader(), cache_mb=0.1)
    assert not tiny_cache.prefill(2, parallel_min_px=0)  # does not fit: read on demand
    lazy.close()


@pytest.mark.parametrize("dropout", [0.0, 1.0])
def test_heat_is_unknown_where_thermal_was_dropped(tiny_scenes, dropout):
    from minewatch.train.augment import TileAugmenter
    from minewatch.train.config import AugmentConfig

    index = _index(tiny_scenes / "train")
    spec = InputSpec(BANDS, (0.3,) * 3, (0.1,) * 3, THERMAL, 32)
    aug = TileAugmenter(AugmentConfig(thermal_dropout_p=dropout), spec.channels, spec.mean, spec.std)
    ds = TileDataset(index, spec, _reader(), augmenter=aug, heat_needs_thermal=True)
    hot = [int(k) for k in np.flatnonzero(ds.targets[:, 2])[:3]]
    for k in hot:
        x, y = ds[(k, 7)]
        assert y[0] == ds.targets[k, 0] and y[1] == ds.targets[k, 1]  # other classes untouched
        assert y[2] == (-1.0 if dropout else 1.0)
        assert float(x[4].max()) == (0.0 if dropout else 1.0)
    assert ds[hot[0]][1][2] == 1.0  # validation items (no augmentation seed) keep their target
    ds.close()


def test_index_marks_lookalike_windows_as_confusers(tiny_scenes):
    index = index_scenes(find_scenes([tiny_scenes / "train"]), _reader(), tile_m=16, stride_m=16, tile_px=32,
                         bands=BANDS, rule=LabelRule(), confuser_m2=5.0)
    confusers = np.concatenate([s.confusers for s in index])
    targets = np.concatenate([s.targets for s in index])
    assert confusers.any() and not (confusers & targets.any(axis=1)).any()
    assert _index(tiny_scenes / "train")[0].confusers is None  # off unless asked for


def test_negative_rasters_give_all_zero_targets_drawn_as_hard_negatives(tmp_path, tiny_scenes):
    """Real imagery known to hold no mining: every window negative for every class, even over objects a
    truth file would label, and in the look-alike sampling group; an alpha band is allowed; a raster
    smaller than one window gives no windows."""
    from minewatch.datasets.scene_folder import find_rasters
    from tests.conftest import write_raster

    rng = np.random.default_rng(3)
    rgba = np.concatenate([rng.integers(30, 220, (3, 96, 96), dtype=np.uint8), np.full((1, 96, 96), 255, np.uint8)])
    folder = tmp_path / "negatives"
    folder.mkdir()
    write_raster(folder / "yard.tif", rgba, descriptions=["red", "green", "blue", "alpha"])
    write_raster(folder / "tiny.tif", rgba[:3, :20, :20])
    labelled = find_scenes([tiny_scenes / "train"])[:1]
    index = index_scenes(labelled, _reader(), negatives=find_rasters([folder], what="negative raster"), tile_m=16,
                         stride_m=16, tile_px=32, bands=BANDS, rule=LabelRule(), confuser_m2=20)
    neg = {s.files.optical.name: s for s in index[1:]}
    assert len(neg["yard.tif"].tiles) == 9 and not neg["yard.tif"].targets.any()
    assert neg["yard.tif"].confusers.all() and len(neg["tiny.tif"].tiles) == 0
    assert index[0].targets.any()  # the labelled scene keeps its positives


def test_training_config_takes_negative_rasters(make_config, tmp_path):
    from minewatch.train.config import load_train_config
    from minewatch.train.ddp import DistInfo
    from minewatch.train.prepare import prepare
    from tests.conftest import write_raster

    write_raster(tmp_path / "neg.tif", np.full((3, 64, 64), 90, np.uint8), descriptions=["red", "green", "blue"])
    cfg, _ = load_train_config(make_config())
    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"negative_rasters": [tmp_path / "neg.tif"]})})
    prep = prepare(cfg, tmp_path / "run", DistInfo(), None)
    names = [s.files.optical.name for s in prep.train_index]
    assert names.count("neg.tif") == 1
    neg = prep.train_index[names.index("neg.tif")]
    assert len(neg.tiles) == 4 and not neg.targets.any()
