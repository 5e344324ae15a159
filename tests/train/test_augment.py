"""Augmentation: geometry moves all channels together; photometry never touches thermal."""

from __future__ import annotations

import numpy as np
import pytest

from minewatch.train.augment import TileAugmenter
from minewatch.train.config import AugmentConfig

pytestmark = pytest.mark.torch

CHANNELS = ("red", "green", "blue", "thermal_dt", "thermal_valid")
MEAN, STD = (0.3, 0.35, 0.25), (0.1, 0.12, 0.08)
PHOTO_OFF = dict(band_p=0.0, noise_p=0.0, blur_p=0.0, haze_p=0.0)
PHOTO_ON = dict(band_p=1.0, noise_p=1.0, blur_p=1.0, haze_p=1.0)


def _tile(seed=0, size=32):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, size=(size, size, 5)).astype(np.float32)
    x[:, :, 3] = rng.normal(0, 1, size=(size, size))  # thermal excess / scale
    x[:, :, 4] = 1.0
    return x


@pytest.mark.parametrize("seed", range(5))
def test_photometric_augmentation_never_changes_thermal_values(seed):
    x = _tile(seed)
    cfg = AugmentConfig(affine_p=1.0, thermal_dropout_p=0.0, **PHOTO_ON)
    with_photo = TileAugmenter(cfg, CHANNELS, MEAN, STD)(x, seed)
    geometry_only = TileAugmenter(cfg.model_copy(update=PHOTO_OFF), CHANNELS, MEAN, STD)(x, seed)
    # thermal is exactly what geometry alone made of it, while optical did change
    assert np.array_equal(with_photo[:, :, 3:], geometry_only[:, :, 3:])
    assert np.abs(with_photo[:, :, :3] - geometry_only[:, :, :3]).mean() > 0.05


def test_flips_and_turns_keep_thermal_values_and_registration():
    x = _tile(3)
    x[:, :, 0] = np.arange(32 * 32, dtype=np.float32).reshape(32, 32) / 1000  # optical pattern
    x[:, :, 3] = x[:, :, 0] * 2  # thermal registered to it
    cfg = AugmentConfig(affine_p=0.0, flip_p=1.0, rotate90_p=1.0, thermal_dropout_p=0.0, **PHOTO_OFF)
    aug = TileAugmenter(cfg, CHANNELS, MEAN, STD)
    moved = 0
    for seed in range(8):
        y = aug(x, seed)
        assert np.array_equal(np.sort(y[:, :, 3], axis=None), np.sort(x[:, :, 3], axis=None))
        assert np.array_equal(y[:, :, 3], y[:, :, 0] * 2)
        moved += not np.array_equal(y, x)
    assert moved >= 6


def test_thermal_dropout_zeroes_both_thermal_channels_only():
    x = _tile(1)
    cfg = AugmentConfig(thermal_dropout_p=1.0, flip_p=0, rotate90_p=0, affine_p=0, **PHOTO_OFF)
    y = TileAugmenter(cfg, CHANNELS, MEAN, STD)(x, 0)
    assert not y[:, :, 3:].any()
    assert np.array_equal(y[:, :, :3], x[:, :, :3])
    kept = TileAugmenter(cfg.model_copy(update={"thermal_dropout_p": 0.0}), CHANNELS, MEAN, STD)(x, 0)
    assert np.array_equal(kept, x)


def test_same_seed_same_result_and_input_untouched():
    x = _tile(2)
    copy = x.copy()
    aug = TileAugmenter(AugmentConfig(), CHANNELS, MEAN, STD)
    assert np.array_equal(aug(x, 42), aug(x, 42))
    assert np.array_equal(x, copy)
    assert any(not np.array_equal(aug(x, 42), aug(x, s)) for s in range(43, 48))


def test_horizontal_and_vertical_flips_are_independent():
    z = np.zeros((4, 4, 5), np.float32)
    z[0, 0, :] = 1
    cfg = AugmentConfig(affine_p=0, rotate90_p=0, thermal_dropout_p=0, **PHOTO_OFF)
    aug = TileAugmenter(cfg, CHANNELS, (0.0,) * 3, (1.0,) * 3)
    corners = {tuple(np.argwhere(aug(z, s)[:, :, 3] == 1)[0]) for s in range(40)}
    assert len(corners) == 4


SENSOR_ON = dict(jpeg_p=1.0, gamma_p=1.0, hue_sat_p=1.0, sharpen_p=1.0, defocus_p=1.0, downscale_p=1.0)


@pytest.mark.parametrize("seed", range(3))
def test_sensor_effects_change_optical_only_and_repeat_per_seed(seed):
    """JPEG, gamma, hue/saturation, sharpen, defocus and downscale-upscale: camera effects on the optical
    bands; thermal excess is a measurement and stays as geometry left it."""
    x = _tile(seed, size=64)
    base = AugmentConfig(thermal_dropout_p=0.0, **PHOTO_OFF)
    plain = TileAugmenter(base, CHANNELS, MEAN, STD)(x, seed)
    sensor = TileAugmenter(base.model_copy(update=SENSOR_ON), CHANNELS, MEAN, STD)
    got = sensor(x, seed)
    assert np.array_equal(got[:, :, 3:], plain[:, :, 3:])
    assert np.abs(got[:, :, :3] - plain[:, :, :3]).mean() > 0.05
    assert np.array_equal(got, sensor(x, seed))  # same seed, same effects, in any process

