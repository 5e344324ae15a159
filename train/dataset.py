"""The torch dataset: windows of many scene folders, read on the fly through :mod:`minewatch.datasets`.

Each scene is indexed once (its windows and their multi-label targets, from ``truth.geojson`` with one
spatial-index query per class); pixels are read per item through the same
:func:`~minewatch.datasets.model_input.tile_input` that ``scan`` uses, so training and inference see
identical inputs. Raster handles are opened lazily inside each process (DataLoader workers included)
and never pickled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from affine import Affine
from torch.utils.data import Dataset, Sampler

from minewatch.classes import CLASSES
from minewatch.datasets.bands import check_bands
from minewatch.datasets.labels import LabelRule, confuser_windows, known_targets, read_truth
from minewatch.datasets.masks import ObjectLayers, object_layers
from minewatch.datasets.model_input import InputSpec, channel_names, nodata_fraction, pad_to, tile_input
from minewatch.datasets.scene import Scene, SceneOpener
from minewatch.datasets.scene_folder import SceneFiles
from minewatch.datasets.tiling import Tile, plan_tiles, tiles_to_gdf
from minewatch.errors import UserError
from minewatch.progress import progress
from minewatch.train.augment import TileAugmenter
from minewatch.train.config import GeneratedScenes

log = logging.getLogger(__name__)

PARALLEL_MIN_PX = 200 * 128 * 128
"""Reading fewer pixels than this (~200 windows of 128 px, ~20 s) is not worth starting reader processes."""


# ---------------------------------------------------------------------------------------- generated scenes
def generated_folder(spec: GeneratedScenes, data_dir: Path, profile: str) -> Path:
    """Cache folder of generated scenes: one per (profile, size, recipe content, generator version), seeds
    side by side inside. The recipe's resolved content and the generator's version are in the key, so a
    changed recipe or generator never reuses scenes drawn by the old one."""
    from minewatch.datasets.synth import GENERATOR_VERSION, load_recipe

    recipe = load_recipe(spec.recipe).model_dump(mode="json")
    key = json.dumps({"profile": spec.profile or profile, "size": spec.size, "recipe": recipe,
                      "generator": GENERATOR_VERSION}, sort_keys=True, default=str)
    return data_dir / f"synth-{spec.profile or profile}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"


def generated_paths(spec: GeneratedScenes, data_dir: Path, profile: str) -> list[Path]:
    """Where the scenes of ``spec`` live in the cache, one folder per seed (generated or not)."""
    folder = generated_folder(spec, data_dir, profile)
    return [folder / f"scene_{s:06d}" for s in spec.seeds]


def _generate_one(seed: int, folder: Path, target: Path, profile: str, recipe: str | None, size: int | None) -> None:
    """One scene into a temporary folder, then moved into place (picklable: runs in worker processes)."""
    from minewatch.datasets.synth import generate_scenes

    with tempfile.TemporaryDirectory(dir=folder, prefix=".gen-") as tmp:
        made = generate_scenes(Path(tmp), seed=seed, count=1, profile=profile, recipe=recipe, size=size)
        if target.exists():
            shutil.rmtree(target)
        os.replace(made[0], target)


def ensure_generated(spec: GeneratedScenes, data_dir: Path, profile: str, processes: int = 1) -> list[Path]:
    """Scene folders for every seed of ``spec``, generating the missing ones (reused when present), in
    ``processes`` worker processes when more than one.

    Each scene is generated in a temporary folder and moved into place, so an interrupted run never
    leaves a half-written scene that a later run would reuse. A scene depends only on its seed, so the
    files are the same whatever the number of processes.
    """
    folder = generated_folder(spec, data_dir, profile)
    folder.mkdir(parents=True, exist_ok=True)
    wanted = dict(zip(spec.seeds, generated_paths(spec, data_dir, profile), strict=True))
    missing = [s for s, f in wanted.items() if not (f / "scene.json").is_file()]
    if missing:
        log.info("generating %d scene(s) into %s", len(missing), folder)
    args = [(s, folder, wanted[s], spec.profile or profile, spec.recipe, spec.size) for s in missing]
    if processes > 1 and len(missing) > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(processes, len(missing)), mp_context=mp.get_context("spawn")) as pool:
            jobs = [pool.submit(_generate_one, *a) for a in args]
            for job in progress(jobs, total=len(jobs), desc="generating scenes", unit="scene"):
                job.result()
    else:
        for a in progress(args, total=len(args), desc="generating scenes", unit="scene"):
            _generate_one(*a)
    return [wanted[s] for s in spec.seeds]


# ---------------------------------------------------------------------------------------- indexing
@dataclass(frozen=True)
class SceneWindows:
    """One scene's training windows and their targets (n_windows, n_classes)."""

    files: SceneFiles
    tiles: tuple[Tile, ...]
    targets: np.ndarray
    band_names: tuple[str, ...]
    confusers: np.ndarray | None = None  # negative windows holding look-alikes (see confuser_windows)
    objects: ObjectLayers | None = None  # truth objects of the dense head's masks (None: no dense head)
    transform: tuple[float, ...] | None = None  # the model grid's affine (6 numbers), to rasterise objects


def index_scene(files: SceneFiles, reader: SceneOpener, *, tile_m: float, stride_m: float, tile_px: int,
                bands: Sequence[str], rule: LabelRule, classes: Sequence[str] = CLASSES,
                max_nodata: float = 0.5, confuser_m2: float | None = None, negative: bool = False,
                masks: Sequence[str] = ()) -> SceneWindows:
    """Windows of one scene (nodata-filtered) and their targets, computed once.

    ``masks``: names of the dense head's masks; the scene's truth objects are then kept (in the grid's CRS,
    :func:`~minewatch.datasets.masks.object_layers`) and rasterised per window when it is read.

    ``negative``: real imagery known to hold no mining: every window negative for every class and, with
    ``confuser_m2``, drawn as a hard negative; extra bands (an alpha band) are allowed, and a raster smaller
    than one window gives none (a padded window is not what scans see).
    """
    with reader.open_folder(files, thermal=False) as scene:  # the thermal background is not needed to index
        check_bands(scene.band_names, bands, path=files.optical, exact=not negative,
                    fix="use scenes of the model's sensor profile, or set model.profile to the data's profile")
        plan = plan_tiles(scene.grid, tile_m=tile_m, stride_m=stride_m, tile_px=tile_px)
        small = negative and min(scene.grid.width, scene.grid.height) < tile_px
        if small:
            log.warning("%s: smaller than one %g m window on the model grid; not used as negatives",
                        files.optical, tile_m)
        tiles = [] if small else [t for t in plan.tiles
                                  if nodata_fraction(scene.read_optical(t, tuple(bands))) <= max_nodata]
        objects = ObjectLayers.empty(masks) if masks else None
        if negative:
            targets = np.zeros((len(tiles), len(classes)), dtype=np.uint8)
            confusers = None if confuser_m2 is None else np.ones(len(tiles), dtype=bool)
        elif files.truth is not None and tiles and _has_features(files.truth):
            gdf = tiles_to_gdf(tiles, scene.grid.transform, scene.grid.crs)
            truth = read_truth(files.truth)
            known, targets = known_targets(gdf, truth, classes, rule)  # unjudged or unseen ground: neither
            tiles = [t for t, k in zip(tiles, known, strict=True) if k]
            gdf = gdf[known].reset_index(drop=True)
            confusers = (None if confuser_m2 is None else
                         confuser_windows(gdf, truth, targets, min_area_m2=confuser_m2, classes=classes))
            if masks:
                objects = object_layers(truth, scene.grid.crs, masks, min_dt_k=rule.min_dt_k)
        else:
            if files.truth is None:
                log.warning("%s: no truth.geojson; all windows are negatives", files.folder)
            targets = np.zeros((len(tiles), len(classes)), dtype=np.uint8)
            confusers = None if confuser_m2 is None else np.zeros(len(tiles), dtype=bool)
        return SceneWindows(files, tuple(tiles), targets, tuple(scene.band_names), confusers, objects,
                            tuple(scene.grid.transform)[:6] if masks else None)


def _has_features(path: Path) -> bool:
    """False for a truth file without polygons (a scene with nothing to find: all windows negative)."""
    import pyogrio

    try:
        return int(pyogrio.read_info(path).get("features", 1)) != 0
    except Exception:  # noqa: BLE001 - let read_truth report an unreadable file properly
        return True


def index_scenes(scenes: Sequence[SceneFiles], reader: SceneOpener, *, desc: str = "indexing",
                 negatives: Sequence[SceneFiles] = (), **kwargs) -> list[SceneWindows]:
    """Windows of labelled scenes, then of ``negatives`` (see :func:`index_scene`)."""
    items = [(f, False) for f in scenes] + [(f, True) for f in negatives]
    out = [index_scene(f, reader, negative=neg, **kwargs)
           for f, neg in progress(items, total=len(items), desc=desc, unit="scene")]
    n = sum(len(s.tiles) for s in out)
    if n == 0:
        raise UserError(f"no usable windows in {len(scenes)} scene(s)",
                        path=scenes[0].folder if scenes else None,
                        fix="check the scenes are larger than one tile and not mostly nodata")
    return out


def normalisation_stats(index: Sequence[SceneWindows], reader: SceneOpener, bands: Sequence[str], *,
                        n_tiles: int, seed: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-band mean and std of reflectance over a random sample of windows (computed once per run)."""
    pairs = [(i, j) for i, s in enumerate(index) for j in range(len(s.tiles))]
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(pairs), size=min(n_tiles, len(pairs)), replace=False).tolist())
    total = np.zeros(len(bands))
    total_sq = np.zeros(len(bands))
    count = np.zeros(len(bands))
    by_scene: dict[int, list[int]] = {}
    for k in pick:
        i, j = pairs[k]
        by_scene.setdefault(i, []).append(j)
    for i, js in progress(by_scene.items(), total=len(by_scene), desc="band statistics", unit="scene"):
        with reader.open_folder(index[i].files, thermal=False) as scene:
            for j in js:
                x = scene.read_optical(index[i].tiles[j], tuple(bands)).astype(np.float64)
                valid = np.isfinite(x)
                total += np.where(valid, x, 0).sum(axis=(1, 2))
                total_sq += np.where(valid, x * x, 0).sum(axis=(1, 2))
                count += valid.sum(axis=(1, 2))
    if not count.all():
        raise UserError("no valid optical pixels in the sampled windows", path=index[0].files.folder,
                        fix="check the optical rasters and their nodata value")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    std = np.maximum(std, 1e-3)  # a constant band must not blow up after normalisation
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


# ---------------------------------------------------------------------------------------- dataset
class TileDataset(Dataset):
    """Windows of many scenes as (input (C, H, W) float32, target (K,) float32) pairs, or triples with the
    dense head's mask targets (M, H, W) float32 when the index carries truth objects (coverage 0..1; -1 where
    unknown: the heat mask where the window has no thermal, after augmentation and thermal dropout).

    Items are plain indices (validation) or ``(index, seed)`` pairs from :class:`BalancedSampler`
    (training: the seed drives the augmentation, so it is identical in any worker and after a resume).
    Mask targets are rasterised on first use and, with a cache, kept as uint8 for windows that hold objects.
    """

    def __init__(self, index: Sequence[SceneWindows], spec: InputSpec, reader: SceneOpener, *,
                 augmenter: TileAugmenter | None = None, cache_mb: float = 0.0,
                 heat_needs_thermal: bool = False) -> None:
        self.index = list(index)
        self.spec = spec
        self.reader = reader
        self.augmenter = augmenter
        self.items = [(i, j) for i, s in enumerate(self.index) for j in range(len(s.tiles))]
        self.targets = (np.concatenate([s.targets for s in self.index], axis=0) if self.index
                        else np.zeros((0, len(CLASSES)), np.uint8))
        self.confusers = (np.concatenate([s.confusers for s in self.index])
                          if self.index and all(s.confusers is not None for s in self.index) else None)
        self.channels = channel_names(spec.optical_bands)
        # Where heat is ignored without thermal: (class index, thermal_valid channel index).
        self._heat_mask = ((CLASSES.index("heat_signature"), self.channels.index("thermal_valid"))
                           if heat_needs_thermal else None)
        self.cache_mb = cache_mb
        self.mask_names: tuple[str, ...] = (self.index[0].objects.names if self.index and all(
            s.objects is not None for s in self.index) else ())
        self._thermal_valid = self.channels.index("thermal_valid")
        self._scenes: dict[int, Scene] = {}
        self._cache: dict[int, np.ndarray] = {}
        self._mask_cache: dict[int, np.ndarray | None] = {}
        self._cache_bytes = 0
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self.items)

    def __getstate__(self) -> dict:
        # Raster handles and cached pixels never cross a process boundary; each worker opens its own.
        state = self.__dict__.copy()
        state["_scenes"], state["_cache"], state["_cache_bytes"], state["_mask_cache"] = {}, {}, 0, {}
        return state

    def _scene(self, i: int) -> Scene:
        if self._pid != os.getpid():  # forked worker: the parent's handles are not ours
            self._scenes, self._cache, self._cache_bytes, self._pid = {}, {}, 0, os.getpid()
            self._mask_cache = {}
        scene = self._scenes.get(i)
        if scene is None:
            scene = self._scenes[i] = self.reader.open_folder(self.index[i].files)
        return scene

    def read(self, k: int) -> np.ndarray:
        """Un-augmented model input of item ``k``, (C, H, W) float32."""
        cached = self._cache.get(k)
        if cached is not None and self._pid == os.getpid():
            return cached
        i, j = self.items[k]
        x = tile_input(self._scene(i), self.index[i].tiles[j], self.spec)
        self._store(k, x)
        return x

    def read_masks(self, k: int) -> np.ndarray:
        """Un-augmented mask targets of item ``k``, (M, H, W) float32 coverage 0..1."""
        if self._pid != os.getpid():
            self._mask_cache, self._pid = {}, os.getpid()
        size = self.spec.tile_px
        if k in self._mask_cache:
            cached = self._mask_cache[k]
            if cached is None:
                return np.zeros((len(self.mask_names), size, size), np.float32)
            return cached.astype(np.float32) / 255.0
        i, j = self.items[k]
        scene, tile = self.index[i], self.index[i].tiles[j]
        assert scene.objects is not None and scene.transform is not None
        transform = Affine(*scene.transform) * Affine.translation(tile.col_off, tile.row_off)
        m = pad_to(scene.objects.rasterize(transform, tile.height, tile.width), size)
        if self.cache_mb > 0:
            self._mask_cache[k] = np.round(m * 255).astype(np.uint8) if m.any() else None
        return m

    def _store(self, k: int, x: np.ndarray) -> None:
        if self._cache_bytes + x.nbytes <= self.cache_mb * 1e6:
            x.setflags(write=False)
            self._cache[k] = x
            self._cache_bytes += x.nbytes

    def prefill(self, processes: int = 1, *, desc: str = "reading windows",
                parallel_min_px: int = PARALLEL_MIN_PX) -> bool:
        """Read every window into the cache up front, ``processes`` scenes at a time.

        Reading a window through the scene warp costs far more than a training step, so when the whole
        set fits in the cache it is read once, in parallel, before the first epoch. Values are those of
        :meth:`read` (same :func:`tile_input`), so results do not depend on whether this ran.
        """
        if not self.items or self.cache_mb <= 0:
            return False
        c = len(self.channels)
        need = len(self.items) * c * self.spec.tile_px**2 * 4
        if self._cache_bytes + need > self.cache_mb * 1e6:
            log.info("%d windows (%.0f MB) exceed the cache (%.0f MB): read on demand", len(self.items), need / 1e6,
                     self.cache_mb)
            return False
        by_scene: dict[int, list[int]] = {}
        for k, (i, _) in enumerate(self.items):
            if k not in self._cache:
                by_scene.setdefault(i, []).append(k)
        tasks = [(self.index[i].files, [self.index[i].tiles[self.items[k][1]] for k in ks], self.spec, self.reader)
                 for i, ks in by_scene.items()]
        pending_px = sum(len(ks) for ks in by_scene.values()) * self.spec.tile_px**2
        if processes > 1 and len(tasks) > 1 and pending_px >= parallel_min_px:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(min(processes, len(tasks)), mp_context=mp.get_context("spawn")) as pool:
                results = pool.map(_read_windows, tasks)
                for ks, arr in progress(zip(by_scene.values(), results, strict=True), total=len(tasks), desc=desc,
                                        unit="scene"):
                    for k, x in zip(ks, arr, strict=True):
                        self._store(k, x)
        else:
            for ks, task in progress(zip(by_scene.values(), tasks, strict=True), total=len(tasks), desc=desc,
                                     unit="scene"):
                for k, x in zip(ks, _read_windows(task), strict=True):
                    self._store(k, x)
        return True

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, ...]:
        k, seed = (key, None) if isinstance(key, int | np.integer) else key
        x = self.read(int(k))
        m = self.read_masks(int(k)) if self.mask_names else None
        if self.augmenter is not None and seed is not None:
            if m is None:
                x = self.augmenter(x.transpose(1, 2, 0), int(seed)).transpose(2, 0, 1)
            else:
                xa, ma = self.augmenter(x.transpose(1, 2, 0), int(seed), masks=m.transpose(1, 2, 0))
                x, m = xa.transpose(2, 0, 1), ma.transpose(2, 0, 1)
        x = np.ascontiguousarray(x, dtype=np.float32)
        y = self.targets[int(k)].astype(np.float32)
        if self._heat_mask is not None and seed is not None and not x[self._heat_mask[1]].any():
            y[self._heat_mask[0]] = -1.0  # no thermal in this window: heat is not known, not absent
        xt = torch.from_numpy(x.copy() if not x.flags.writeable else x)
        if m is None:
            return xt, torch.from_numpy(y)
        m = np.array(m, dtype=np.float32)  # a fresh, writeable copy
        if "heat" in self.mask_names:  # heat is seen, never guessed: unknown wherever thermal is missing
            m[self.mask_names.index("heat")][x[self._thermal_valid] < 0.5] = -1.0
        return xt, torch.from_numpy(y), torch.from_numpy(m)

    def close(self) -> None:
        for scene in reversed(list(self._scenes.values())):
            scene.close()
        self._scenes.clear()

    def __del__(self) -> None:  # pragma: no cover - best effort at interpreter exit
        try:
            if self._pid == os.getpid():
                self.close()
        except Exception:  # noqa: BLE001
            pass


def _read_windows(task: tuple[SceneFiles, list[Tile], InputSpec, SceneOpener]) -> list[np.ndarray]:
    """Model inputs of some windows of one scene (run in a worker process by :meth:`TileDataset.prefill`)."""
    files, tiles, spec, reader = task
    with reader.open_folder(files) as scene:
        return [tile_input(scene, t, spec) for t in tiles]


# ---------------------------------------------------------------------------------------- sampling
def sample_weights(targets: np.ndarray, balance: float, confusers: np.ndarray | None = None) -> np.ndarray:
    """Per-window sampling weight: 1 / count(group)^balance.

    The group is the window's rarest positive class, else 'confuser' (a negative holding a look-alike,
    when ``confusers`` is given), else 'none'. With ``balance`` = 1 every group is drawn equally often,
    so a class seen in 1 % of windows is not drowned by the other 99 %; 0 keeps natural frequencies.
    """
    t = np.asarray(targets, dtype=bool)
    n, k = t.shape
    counts = t.sum(axis=0).astype(float)
    rank = np.where(t, counts[None, :], np.inf)
    group = np.where(t.any(axis=1), np.argmin(rank, axis=1), k + 1)
    if confusers is not None:
        group[np.asarray(confusers, dtype=bool) & ~t.any(axis=1)] = k
    group_counts = np.bincount(group, minlength=k + 2).astype(float)
    return (group_counts[group] ** -balance).astype(np.float64) if n else np.zeros(0)


def expected_positive_rate(targets: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Share of positives per class among windows drawn with ``weights`` (for an automatic pos_weight)."""
    w = np.asarray(weights, dtype=float)
    return (w[:, None] * np.asarray(targets, dtype=float)).sum(axis=0) / max(w.sum(), 1e-12)


class BalancedSampler(Sampler):
    """Weighted sampling with replacement (like ``WeightedRandomSampler``), epoch-seeded and shardable.

    The draw of epoch ``e`` depends only on (seed, e): a resumed run draws exactly what the uninterrupted
    run would have, and under DDP every rank draws the same sequence and keeps its own stride of it.
    Each item is ``(index, augmentation seed)``.
    """

    def __init__(self, weights: np.ndarray, *, num_samples: int, seed: int, rank: int = 0,
                 world_size: int = 1) -> None:
        if len(weights) == 0:
            raise ValueError("no windows to sample")
        self.weights = torch.as_tensor(np.asarray(weights, dtype=np.float64))
        self.per_rank = -(-num_samples // world_size)
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.per_rank

    def __iter__(self) -> Iterator[tuple[int, int]]:
        g = torch.Generator().manual_seed(int(self.seed) * 1_000_003 + self.epoch)
        total = self.per_rank * self.world_size
        idx = torch.multinomial(self.weights, total, replacement=True, generator=g)
        seeds = torch.randint(0, 2**31 - 1, (total,), generator=g)
        for i in range(self.rank, total, self.world_size):
            yield int(idx[i]), int(seeds[i])

