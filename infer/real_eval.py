"""How a model does on real imagery it never saw: false candidate sites per km2 on real scenes without
mining, and site recall on generated sites pasted on real orthophotos, both from held-out backgrounds.

The held-out orthophotos are listed here once (:data:`HELDOUT`) and are never training backgrounds (those are
`datasets/backgrounds`, see its ATTRIBUTION.md): they come from ``../shared/data/real`` beside the checkout
(or ``$MINEWATCH_REAL_DATA``), and the figures are "not available" where that folder is absent. Nothing is
tuned on them: a model card reports them, nothing else reads them.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio

from minewatch.classes import CLASSES
from minewatch.datasets.crs import utm_epsg

log = logging.getLogger(__name__)

RECALL_SEED, RECALL_COUNT = 7200, 30
"""Seeds of the generated scenes on held-out backgrounds (in no training or validation set)."""
UNGEOREFERENCED_ORIGIN = (-122.258, 37.872)
"""Where a held-out image without georeferencing is placed (Berkeley's campus, where it was taken)."""


@dataclass(frozen=True)
class HeldOut:
    path: str  # relative to the real-data folder
    what: str
    gsd_m: float | None = None  # pixel size of an image without georeferencing


HELDOUT: tuple[HeldOut, ...] = (
    HeldOut("backgrounds/detectree/1091-322_00.tif", "Zurich-Altstetten: apartment blocks, flat roofs, car parks"),
    HeldOut("backgrounds/detectree/ref-img.tif", "Lake Zurich shore: villas, railway, a small marina"),
    HeldOut("backgrounds/webodm/orthophoto.tif", "park near Duluth (drone)"),
    HeldOut("backgrounds/rio-tiler/pix4d_alpha_nodata.tif", "Bali: small plots, nursery beds, roofs (drone)"),
    HeldOut("deepforest/5b90f92da0d7280005fab355_4310.tif", "Manila: bridge, parking lot, trucks, roofs"),
    HeldOut("backgrounds/opengeos_data/berkeley.jpg", "UC Berkeley campus: flat roofs with HVAC plant "
            "(not georeferenced, ~0.9 m; unclear licence: evaluation only)", gsd_m=0.9),
)


REAL_RGBN: tuple[HeldOut, ...] = (
    HeldOut("solaris/ms1.tif", "Rotterdam: residential blocks and a park, 4-band 1 m satellite (SpaceNet), read as "
            "blue, green, red, nir 11-bit numbers"),
)
"""Real four-band (RGBN) satellite rasters for a satellite model's false-site figure (it reads a NIR band, which
the held-out orthophotos lack)."""
REAL_RGBN_BANDS = {"solaris/ms1.tif": ("blue", "green", "red", "nir")}


def real_data_dir() -> Path | None:
    """``$MINEWATCH_REAL_DATA``, else ``../shared/data/real`` beside the checkout; None when absent."""
    env = os.environ.get("MINEWATCH_REAL_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "data" / "real")
    return next((c for c in candidates if c.is_dir()), None)


def available(root: Path) -> list[HeldOut]:
    return [h for h in HELDOUT if (root / h.path).is_file()]


def georeferenced(root: Path, held: HeldOut, work: Path) -> Path:
    """The held-out image as a GeoTIFF: itself when georeferenced, else a copy placed in UTM at its GSD."""
    src_path = root / held.path
    if held.gsd_m is None:
        return src_path
    out = work / f"{src_path.stem}.tif"
    if out.is_file():
        return out
    from pyproj import Transformer
    from rasterio.transform import from_origin

    lon, lat = UNGEOREFERENCED_ORIGIN
    epsg = utm_epsg(lon, lat)
    x, y = Transformer.from_crs(4326, epsg, always_xy=True).transform(lon, lat)
    with rasterio.open(src_path) as src:
        data = src.read()
    work.mkdir(parents=True, exist_ok=True)
    with rasterio.open(out, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                       dtype=data.dtype, crs=f"EPSG:{epsg}", transform=from_origin(x, y, held.gsd_m, held.gsd_m),
                       tiled=True, compress="deflate") as dst:
        dst.write(data)
        dst.descriptions = ("red", "green", "blue")[: data.shape[0]]
    return out


def _valid_km2(path: Path, gsd_m: float) -> float:
    """Area with optical data on the model grid (nodata, alpha and untagged collars excluded)."""
    from minewatch.datasets.scene import Scene
    from minewatch.datasets.tiling import Tile

    with Scene(path, gsd_m=gsd_m) as scene:
        g = scene.grid
        x = scene.read_optical(Tile(0, 0, 0, 0, g.height, g.width), ("red", "green", "blue"))
    return float(np.isfinite(x).all(axis=0).sum()) * gsd_m**2 / 1e6


@dataclass
class NegativeFigures:
    """Candidate sites on real scenes without mining: every one is a false alarm."""

    rows: list[dict] = field(default_factory=list)

    @property
    def km2(self) -> float:
        return sum(r["km2"] for r in self.rows)

    @property
    def sites(self) -> int:
        return sum(r["sites"] for r in self.rows)

    @property
    def per_km2(self) -> float:
        return self.sites / self.km2 if self.km2 else float("nan")


def false_sites(model: Path, root: Path, work: Path, held_out: tuple[HeldOut, ...] = HELDOUT, *,
                min_windows: int | None = None) -> NegativeFigures:
    """Scan every held-out raster (default: the orthophotos) as it is (optical only, at its own pixel size) and
    count sites (``min_windows``: the scan's --min-windows)."""
    import geopandas as gpd

    from minewatch.infer.model_file import read_model_meta
    from minewatch.infer.scan import ScanRequest, run_scan

    meta = read_model_meta(model)
    out = NegativeFigures()
    for held in (h for h in held_out if (root / h.path).is_file()):
        raster = georeferenced(root, held, work / "rasters")
        dest = work / "negatives" / Path(held.path).stem
        dest.mkdir(parents=True, exist_ok=True)
        result = run_scan(ScanRequest(raster=raster, model=model, out=dest / "sites.geojson", overwrite=True,
                                      bands=REAL_RGBN_BANDS.get(held.path), min_windows=min_windows))
        sites = gpd.read_file(dest / "sites.geojson") if len(result.sites) else result.sites
        out.rows.append({"background": held.path, "what": held.what, "km2": _valid_km2(raster, meta.gsd_m),
                         "sites": len(result.sites),
                         "classes": sorted({c for v in sites.get("classes", []) for c in str(v).split(",") if c})})
    return out


@dataclass
class RecallFigures:
    """Generated sites pasted on held-out orthophotos, found or missed by the scan (site level)."""

    scenes: int = 0
    truth: int = 0
    found: int = 0
    candidates: int = 0
    true_positives: int = 0
    per_class: dict[str, tuple[int, int]] = field(default_factory=dict)  # class -> (found, truth)

    @property
    def recall(self) -> float:
        return self.found / self.truth if self.truth else float("nan")

    @property
    def precision(self) -> float:
        return self.true_positives / self.candidates if self.candidates else float("nan")


def background_recall(model: Path, root: Path, work: Path, *, seed: int = RECALL_SEED,
                      count: int = RECALL_COUNT, recipe: str = "real",
                      min_windows: int | None = None, scenes_dir: Path | None = None) -> RecallFigures:
    """Generate ``count`` scenes with the ``recipe`` (``real``; a satellite model: ``satellite-real``) on the
    held-out orthophotos, scan them (optical and thermal) and score the sites against their truth.

    ``scenes_dir``: where the scenes are generated (default ``work/scenes``); models compared on the same scenes
    share one, which generates them once and reuses them while they are all there."""
    from minewatch.datasets.labels import read_truth
    from minewatch.datasets.synth import generate_scenes
    from minewatch.datasets.synth.recipe import BackgroundEntry
    from minewatch.datasets.vectors import read_vector
    from minewatch.infer.evaluate import evaluate_sites
    from minewatch.infer.scan import ScanRequest, run_scan

    entries = [BackgroundEntry(path=root / h.path, gsd_m=h.gsd_m) for h in available(root)]
    folder = work / "scenes" if scenes_dir is None else scenes_dir
    scenes = [folder / f"scene_{s:06d}" for s in range(seed, seed + count)]
    if not all((f / "scene.json").is_file() for f in scenes):
        shutil.rmtree(folder, ignore_errors=True)
        scenes = generate_scenes(folder, seed=seed, count=count, recipe=recipe, backgrounds=entries)
    out = RecallFigures(per_class={c: (0, 0) for c in CLASSES})
    for scene in scenes:
        dest = work / "scans" / scene.name
        dest.mkdir(parents=True, exist_ok=True)
        run_scan(ScanRequest(raster=scene / "optical.tif", thermal=scene / "thermal.tif", model=model,
                             out=dest / "sites.geojson", overwrite=True, min_windows=min_windows))
        report = evaluate_sites(read_vector(dest / "sites.geojson", role="sites"), read_truth(scene / "truth.geojson"))
        out.scenes += 1
        out.truth += report.overall.n_truth
        out.found += report.overall.found
        out.candidates += report.overall.n_candidates
        out.true_positives += report.overall.true_positives
        for c, s in report.per_class.items():
            f, t = out.per_class[c]
            out.per_class[c] = (f + s.found, t + s.n_truth)
    return out
