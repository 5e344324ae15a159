"""Do two revisions of minewatch give the same scan outputs? Sites, tiles, heatmaps and model scores.

Refactors must not change behaviour. This installs a git revision and the working tree side by side
(each into its own folder, not editable), scans the same generated scenes with the same committed model
through each one's own ``minewatch scan`` (plain, with a geofence and an exclude fence, and at another
stride), and compares every output: site properties (all but the run's id and time) and outlines, every
tile column (the model's probabilities included), and the heatmap bands bit for bit.

Usage: python bench/same_outputs.py --base 3bce264 [--scenes 3] [--size 1024]
Exit status 0 when everything is identical, 1 otherwise (each difference is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from shapely.geometry import box

ROOT = Path(__file__).resolve().parents[1]
VOLATILE = {"run_id", "created"}
"""Properties that differ between any two runs by design."""


def install(rev: str | None, where: Path) -> Path:
    """Install revision ``rev`` (None: the working tree) into ``where/site`` and return that folder."""
    src = ROOT
    if rev is not None:
        src = where / "src"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(src), rev], check=True,
                       capture_output=True)
    site = where / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(src)], check=True, capture_output=True)
    return site


def write_fences(scene: Path) -> tuple[Path, Path]:
    """An include fence over most of the scene and an exclude fence over one corner, beside its rasters."""
    with rasterio.open(scene / "optical.tif") as src:
        left, bottom, right, top = src.bounds
        crs = src.crs
    w, h = right - left, top - bottom
    fence, exclude = scene / "fence.geojson", scene / "exclude.geojson"
    gpd.GeoDataFrame(geometry=[box(left, bottom, left + 0.7 * w, top - 0.1 * h)], crs=crs).to_file(fence)
    gpd.GeoDataFrame(geometry=[box(left, bottom, left + 0.3 * w, bottom + 0.3 * h)], crs=crs).to_file(exclude)
    return fence, exclude


def scan_all(site: Path, scenes: list[Path], out: Path) -> None:
    """Run each case through the installed revision's CLI."""
    env = {**os.environ, "PYTHONPATH": str(site), "MINEWATCH_THREADS": "1"}
    for scene in scenes:
        fence, exclude = scene / "fence.geojson", scene / "exclude.geojson"
        cases = {"plain": [], "fenced": ["--geofence", str(fence), "--exclude", str(exclude)],
                 "stride24": ["--stride-m", "24"]}
        for case, extra in cases.items():
            dest = out / scene.name / case
            dest.mkdir(parents=True)
            cmd = [sys.executable, "-m", "minewatch", "scan", "-q", str(scene / "optical.tif"), "--thermal",
                   str(scene / "thermal.tif"), "-o", str(dest / "sites.geojson"), "--tiles-out",
                   str(dest / "tiles.gpkg"), "--heatmap", str(dest / "heatmap.tif"), *extra]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=out)
            if done.returncode != 0:
                raise SystemExit(f"scan failed ({site}): {' '.join(cmd)}\n{done.stderr[-2000:]}")


def compare_case(a: Path, b: Path, counts: dict[str, int]) -> list[str]:
    """Differences between two output folders of one case (empty when identical); ``counts`` adds up what
    was compared."""
    diffs: list[str] = []
    sa, sb = (json.loads((p / "sites.geojson").read_text()) for p in (a, b))
    fa, fb = sa["features"], sb["features"]
    if len(fa) != len(fb):
        return [f"{a.parent.name}/{a.name}: {len(fa)} vs {len(fb)} sites"]
    counts["sites"] += len(fa)
    for x, y in zip(fa, fb, strict=True):
        px = {k: v for k, v in x["properties"].items() if k not in VOLATILE}
        py = {k: v for k, v in y["properties"].items() if k not in VOLATILE}
        if px != py:
            keys = sorted(k for k in set(px) | set(py) if px.get(k) != py.get(k))
            diffs.append(f"{a.parent.name}/{a.name}: site {px.get('site_id')} differs in {keys}")
        if x["geometry"] != y["geometry"]:
            diffs.append(f"{a.parent.name}/{a.name}: site {px.get('site_id')} outline differs")
    ta, tb = (gpd.read_file(p / "tiles.gpkg", engine="pyogrio") for p in (a, b))
    counts["tiles"] += len(ta)
    if list(ta.columns) != list(tb.columns) or len(ta) != len(tb):
        diffs.append(f"{a.parent.name}/{a.name}: tiles {list(ta.columns)} x {len(ta)} vs "
                     f"{list(tb.columns)} x {len(tb)}")
    else:
        for col in ta.columns:
            if col == "geometry":
                same = bool(ta.geometry.geom_equals_exact(tb.geometry, 0).all())
            else:
                same = ta[col].equals(tb[col])
            if not same:
                diffs.append(f"{a.parent.name}/{a.name}: tile column {col} differs")
    with rasterio.open(a / "heatmap.tif") as ra, rasterio.open(b / "heatmap.tif") as rb:
        if ra.transform != rb.transform or ra.crs != rb.crs or ra.descriptions != rb.descriptions:
            diffs.append(f"{a.parent.name}/{a.name}: heatmap grid or bands differ")
        elif not np.array_equal(ra.read(), rb.read(), equal_nan=True):
            diffs.append(f"{a.parent.name}/{a.name}: heatmap values differ")
    return diffs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="git revision to compare the working tree with")
    ap.add_argument("--scenes", type=int, default=3, help="generated scenes to scan (seeds 4242...)")
    ap.add_argument("--size", type=int, default=1024, help="scene side in pixels")
    args = ap.parse_args(argv)
    from minewatch.datasets.synth import generate_scenes

    with tempfile.TemporaryDirectory(prefix="minewatch-same-") as tmp:
        root = Path(tmp)
        scenes = generate_scenes(root / "scenes", seed=4242, count=args.scenes, size=args.size)
        for scene in scenes:
            write_fences(scene)
        outs = {}
        for name, rev in (("base", args.base), ("work", None)):
            site = install(rev, root / name)
            outs[name] = root / name / "out"
            scan_all(site, scenes, outs[name])
        diffs, n, counts = [], 0, {"sites": 0, "tiles": 0}
        for case in sorted(p.relative_to(outs["base"]) for p in outs["base"].glob("*/*")):
            n += 1
            diffs += compare_case(outs["base"] / case, outs["work"] / case, counts)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(root / "base" / "src")],
                       capture_output=True)
    for d in diffs:
        sys.stdout.write(d + "\n")
    sys.stdout.write(f"{n} scans compared ({args.scenes} scenes x 3 cases, {counts['sites']} sites, "
                     f"{counts['tiles']} tiles) against {args.base}: "
                     f"{'identical' if not diffs else f'{len(diffs)} difference(s)'}\n")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
