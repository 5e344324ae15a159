"""Training-time augmentation of multi-band float32 tiles (H, W, C) with albumentations.

Geometry (flips, 90-degree turns, small scale/rotation) moves ALL channels together, so optical and
thermal stay registered. Photometry (per-band brightness/contrast, noise, blur, haze) touches the
OPTICAL bands only: thermal excess is a physical quantity in kelvin, and jittering it would teach the
model that a 10 K farm can look like a 3 K one. Photometric transforms run in reflectance units (the
normalisation is undone and redone), because albumentations clips float images to 0..1.
Thermal dropout zeroes ``thermal_dt`` and ``thermal_valid`` so the model also scores scenes without
thermal, exactly as :func:`minewatch.datasets.model_input.assemble` presents them.

Every call takes a seed: the same seed gives the same augmentation in any process, which makes
training reproducible and resumable whatever the number of DataLoader workers.
"""

from __future__ import annotations

from collections.abc import Sequence

import albumentations as A
import cv2
import numpy as np

from minewatch.datasets.model_input import THERMAL_CHANNELS
from minewatch.train.config import AugmentConfig


def _reseed(transforms: Sequence[A.BasicTransform | A.BaseCompose], seed: int) -> None:
    """Seed each transform from its own stream (albumentations would give all of them the same seed,
    which makes e.g. the horizontal and the vertical flip fire together)."""
    states = np.random.SeedSequence(seed).generate_state(len(transforms))
    for transform, state in zip(transforms, states, strict=True):
        transform.set_random_seed(int(state))


class TileAugmenter:
    """Augments model-input tiles (H, W, C) whose first ``len(mean)`` channels are normalised optical."""

    def __init__(self, cfg: AugmentConfig, channels: Sequence[str], mean: Sequence[float],
                 std: Sequence[float]) -> None:
        self.cfg = cfg
        self.channels = tuple(channels)
        self.n_optical = len(mean)
        if self.channels[self.n_optical:] != THERMAL_CHANNELS[: len(self.channels) - self.n_optical]:
            raise ValueError(f"channels {self.channels} do not end in {THERMAL_CHANNELS} after the optical")
        self.thermal_idx = [self.channels.index(c) for c in THERMAL_CHANNELS if c in self.channels]
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        reflect = cv2.BORDER_REFLECT_101
        self.geometric = [
            A.HorizontalFlip(p=cfg.flip_p),
            A.VerticalFlip(p=cfg.flip_p),
            A.RandomRotate90(p=cfg.rotate90_p),
            A.Affine(scale=cfg.scale, rotate=(-cfg.rotate_deg, cfg.rotate_deg), border_mode=reflect,
                     interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_LINEAR, p=cfg.affine_p),
        ]
        self.band = A.RandomBrightnessContrast(brightness_limit=cfg.brightness, contrast_limit=cfg.contrast,
                                               p=cfg.band_p)
        self.optical = [
            A.GaussNoise(std_range=cfg.noise_std, per_channel=True, p=cfg.noise_p),
            A.GaussianBlur(sigma_limit=cfg.blur_sigma, blur_limit=0, p=cfg.blur_p),
        ]
        # Camera and processing effects real imagery has and generated scenes lack (sim-to-real): colour ones
        # on the red, green and blue bands, the others on every optical band.
        self.rgb = [channels.index(b) for b in ("red", "green", "blue")] if {"red", "green", "blue"} <= set(
            channels[: self.n_optical]) else []
        self.sensor_rgb = [
            A.ImageCompression(quality_range=cfg.jpeg_quality, p=cfg.jpeg_p),
            A.HueSaturationValue(hue_shift_limit=cfg.hue_shift, sat_shift_limit=cfg.saturation_shift,
                                 val_shift_limit=0, p=cfg.hue_sat_p),
        ]
        self.sensor = [
            A.RandomGamma(gamma_limit=(cfg.gamma[0] * 100, cfg.gamma[1] * 100), p=cfg.gamma_p),
            A.Sharpen(alpha=(0.1, 0.4), lightness=(0.9, 1.1), p=cfg.sharpen_p),
            A.Defocus(radius=cfg.defocus_radius, alias_blur=(0.1, 0.3), p=cfg.defocus_p),
            A.Downscale(scale_range=cfg.downscale, interpolation_pair={"downscale": cv2.INTER_AREA,
                                                                       "upscale": cv2.INTER_LINEAR}, p=cfg.downscale_p),
        ]

    def __call__(self, image: np.ndarray, seed: int, masks: np.ndarray | None = None
                 ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """A new augmented (H, W, C) float32 array; ``image`` is left untouched.

        With ``masks`` (H, W, M) (the dense head's targets) the same geometry moves them too (bilinear, as the
        image) and ``(image, masks)`` is returned; the image is augmented exactly as without them.
        """
        if image.ndim != 3 or image.shape[2] != len(self.channels):
            raise ValueError(f"expected (H, W, {len(self.channels)}) input, got {image.shape}")
        if masks is not None and (masks.ndim != 3 or masks.shape[:2] != image.shape[:2]):
            raise ValueError(f"masks {masks.shape} do not match the image {image.shape}")
        x = np.ascontiguousarray(image, dtype=np.float32).copy()
        m = None if masks is None else np.ascontiguousarray(masks, dtype=np.float32).copy()
        if not self.cfg.enabled:
            return x if m is None else (x, m)
        geo_seed, photo_seed, band_seed, own_seed, sensor_seed = np.random.SeedSequence(seed).generate_state(5)
        rng = np.random.default_rng(int(own_seed))
        x = self._photometric(x, int(photo_seed), int(band_seed), rng, int(sensor_seed))
        _reseed(self.geometric, int(geo_seed))
        for transform in self.geometric:
            if m is None:
                x = transform(image=x)["image"]
            else:
                out = transform(image=x, mask=m)
                x, m = out["image"], out["mask"]
        if self.thermal_idx and rng.random() < self.cfg.thermal_dropout_p:
            x[:, :, self.thermal_idx] = 0.0
        x = np.ascontiguousarray(x, dtype=np.float32)
        return x if m is None else (x, np.ascontiguousarray(m, dtype=np.float32).reshape(x.shape[:2] + (-1,)))

    def _sensor(self, work: np.ndarray, seed: int) -> np.ndarray:
        """JPEG, hue/saturation (red, green, blue only), gamma, sharpen, defocus, downscale-upscale."""
        rgb_seed, all_seed = np.random.SeedSequence(seed).generate_state(2)
        if self.rgb:
            _reseed(self.sensor_rgb, int(rgb_seed))
            rgb = np.ascontiguousarray(work[:, :, self.rgb])
            for transform in self.sensor_rgb:
                rgb = transform(image=rgb)["image"]
            work[:, :, self.rgb] = rgb
        _reseed(self.sensor, int(all_seed))
        for transform in self.sensor:
            work = transform(image=np.ascontiguousarray(work))["image"]
        return np.clip(work, 0.0, 1.0).astype(np.float32)

    def _photometric(self, x: np.ndarray, photo_seed: int, band_seed: int,
                     rng: np.random.Generator, sensor_seed: int) -> np.ndarray:
        """Brightness/contrast per band, noise, blur and haze on the optical slice, in reflectance units."""
        n = self.n_optical
        refl = x[:, :, :n] * self.std + self.mean
        # Keep bright pixels (satellite reflectance can exceed 1) by scaling into albumentations' 0..1.
        top = max(1.0, float(refl.max(initial=0.0)))
        work = np.clip(refl / top, 0.0, 1.0).astype(np.float32)
        before = work.copy()
        self.band.set_random_seed(band_seed)
        for b in range(n):
            work[:, :, b : b + 1] = self.band(image=np.ascontiguousarray(work[:, :, b : b + 1]))["image"]
        _reseed(self.optical, photo_seed)
        for transform in self.optical:
            work = transform(image=work)["image"]
        work = self._sensor(work, sensor_seed)
        if rng.random() < self.cfg.haze_p:
            weight = rng.uniform(*self.cfg.haze_strength)
            veil = rng.uniform(0.6, 0.9)
            work = work * (1 - weight) + veil * weight
        if np.array_equal(work, before):  # nothing fired: keep the exact input values
            return x
        x[:, :, :n] = ((work * top) - self.mean) / self.std
        return x

