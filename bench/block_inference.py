"""Experiment: run the convolutional trunk once over blocks and pool per tile, against per-tile inference.

With a stride of half a tile every pixel goes through the trunk four times. Here a block of
``block_px`` square (``n`` tiles per side at the scan's stride) goes through ``model.features`` once; each
tile's 32-px-aligned cells of the feature map are average-pooled and the classifier head is applied.
Tiles whose offsets are not multiples of the trunk's stride (the last row and column, shifted back to
the raster edge) are run per tile in both paths.

Not exact for every architecture: zero padding at tile borders is replaced by real neighbours, and
MobileNetV3's squeeze-excitation averages over the whole block instead of the tile (``--se local``
replaces that by an average over a tile-sized neighbourhood). The script reports the speed-up of the
model part, the probability differences and whether the candidate sites are the same.

Usage: python bench/block_inference.py --checkpoint C --optical O --thermal T [--block-px 512] [--se global]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from minewatch.datasets.model_input import InputSpec, assemble
from minewatch.datasets.scene import Scene
from minewatch.datasets.tiling import Tile, plan_tiles, tiles_to_gdf
from minewatch.progress import setup_logging
from minewatch.train.checkpoint import load_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit  # noqa: E402

TRUNK_STRIDE = 32


class LocalPool(nn.Module):
    """Squeeze-excitation pooling over a tile-sized neighbourhood instead of the whole input."""

    def __init__(self, tile_px: int, input_hw: list[int]) -> None:
        super().__init__()
        self.tile_px = tile_px
        self.input_hw = input_hw  # shared with the caller: the block's input size, [0, 0] per tile

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.input_hw[0]:  # per-tile path: the original global pooling
            return F.adaptive_avg_pool2d(x, 1)
        k = max(1, round(self.tile_px * x.shape[-2] / self.input_hw[0]))
        if k >= min(x.shape[-2:]):
            return F.adaptive_avg_pool2d(x, 1)
        y = F.avg_pool2d(x, k, stride=1, padding=k // 2, count_include_pad=False)
        return y[..., : x.shape[-2], : x.shape[-1]]


def split_model(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(trunk, head): ``features`` and ``classifier`` of MobileNet/EfficientNet, or ResNet's stages and fc."""
    if hasattr(model, "features") and hasattr(model, "classifier"):
        return model.features, model.classifier
    if hasattr(model, "layer4"):
        trunk = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool, model.layer1, model.layer2,
                              model.layer3, model.layer4)
        return trunk, model.fc
    raise SystemExit(f"no trunk/head split known for {type(model).__name__}")


def _read_input(scene: Scene, tile: Tile, spec: InputSpec) -> np.ndarray:
    anomaly = scene.thermal_anomaly(tile)
    return assemble(scene.read_optical(tile, spec.optical_bands), None if anomaly is None else anomaly[0], spec)


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    model, meta = load_model(args.checkpoint)
    trunk, head = split_model(model)
    input_hw = [0, 0]
    if args.se == "local":
        for m in trunk.modules():
            if hasattr(m, "avgpool") and hasattr(m, "fc1"):  # torchvision SqueezeExcitation
                m.avgpool = LocalPool(meta.tile_px, input_hw)
    spec = InputSpec.from_meta(meta)
    tile, results_tile, results_block = meta.tile_px, {}, {}
    t_tile = t_block = 0.0
    with Scene.for_model(meta, args.optical, args.thermal) as scene, \
            torch.inference_mode():
        plan = plan_tiles(scene.grid, tile_m=meta.tile_m, stride_m=args.stride_m or meta.stride_m, tile_px=tile)
        stride = plan.stride_px
        n = max(1, (args.block_px - tile) // stride + 1)
        aligned, loose = {}, []
        for t in plan.tiles:
            if t.row_off % stride or t.col_off % stride or t.row_off % TRUNK_STRIDE or t.col_off % TRUNK_STRIDE:
                loose.append(t)
            else:
                key = (t.row_off // stride // n, t.col_off // stride // n)
                aligned.setdefault(key, []).append(t)
        for (bi, bj), tiles in sorted(aligned.items()):
            r0, c0 = bi * n * stride, bj * n * stride
            r1 = max(t.row_off + t.height for t in tiles)
            c1 = max(t.col_off + t.width for t in tiles)
            x = torch.from_numpy(_read_input(scene, Tile(-1, -1, r0, c0, r1 - r0, c1 - c0), spec))
            crops = torch.stack([x[:, t.row_off - r0 : t.row_off - r0 + tile, t.col_off - c0 : t.col_off - c0 + tile]
                                 for t in tiles])
            t0 = time.perf_counter()
            for i in range(0, len(crops), args.batch):
                p = torch.sigmoid(model(crops[i : i + args.batch])).numpy()
                results_tile.update({t.tile_id: q for t, q in zip(tiles[i : i + args.batch], p, strict=True)})
            t1 = time.perf_counter()
            input_hw[:] = [x.shape[-2], x.shape[-1]]
            feats = trunk(x[None])
            input_hw[:] = [0, 0]
            cells = tile // TRUNK_STRIDE
            pooled = torch.stack([
                feats[0, :, (t.row_off - r0) // TRUNK_STRIDE : (t.row_off - r0) // TRUNK_STRIDE + cells,
                      (t.col_off - c0) // TRUNK_STRIDE : (t.col_off - c0) // TRUNK_STRIDE + cells].mean(dim=(1, 2))
                for t in tiles])
            p = torch.sigmoid(head(pooled)).numpy()
            t2 = time.perf_counter()
            results_block.update({t.tile_id: q for t, q in zip(tiles, p, strict=True)})
            t_tile += t1 - t0
            t_block += t2 - t1
        for i in range(0, len(loose), args.batch):
            chunk = loose[i : i + args.batch]
            xs = torch.from_numpy(np.stack([_read_input(scene, t, spec) for t in chunk]))
            t0 = time.perf_counter()
            p = torch.sigmoid(model(xs)).numpy()
            dt = time.perf_counter() - t0
            t_tile += dt
            t_block += dt
            for t, q in zip(chunk, p, strict=True):
                results_tile[t.tile_id] = results_block[t.tile_id] = q
        return compare(plan.tiles, scene, meta, results_tile, results_block) | {
            "seconds": t_tile + t_block, "n_tiles": len(plan.tiles), "n_loose": len(loose),
            "block_px": args.block_px, "se": args.se,
            "tile_model_s": t_tile, "block_model_s": t_block, "speedup": t_tile / t_block,
            "tile_tiles_per_s": len(plan.tiles) / t_tile, "block_tiles_per_s": len(plan.tiles) / t_block}


def compare(tiles: list[Tile], scene: Scene, meta, per_tile: dict, block: dict) -> dict:
    """Probability differences, decisions and candidate sites of the two paths."""
    from minewatch.infer.sites import build_sites

    ids = [t.tile_id for t in tiles]
    a = np.stack([per_tile[i] for i in ids])
    b = np.stack([block[i] for i in ids])
    thr = np.array([meta.thresholds.get(c, 0.5) for c in meta.classes])
    sites = []
    for probs in (a, b):
        gdf = tiles_to_gdf(tiles, scene.grid.transform, scene.grid.crs)
        for k, name in enumerate(meta.classes):
            gdf[f"p_{name}"] = probs[:, k]
        gdf["dt_max_k"] = np.nan
        gdf["z_max"] = np.nan
        sites.append(build_sites(gdf, dict(meta.thresholds), scene_id="bench", acquired=None, sensor="drone",
                                 model_name="m", model_sha256="", run_id="", created=""))
    same = len(sites[0]) == len(sites[1])
    if same and len(sites[0]):
        ga, gb = sites[0].geometry.union_all(), sites[1].geometry.union_all()
        same = ga.symmetric_difference(gb).area <= 1e-6 * max(ga.union(gb).area, 1.0)
    return {"max_abs_prob_diff": float(np.abs(a - b).max()), "mean_abs_prob_diff": float(np.abs(a - b).mean()),
            "decision_agreement": float(((a >= thr) == (b >= thr)).all(axis=1).mean()),
            "positive_tiles": [int((a >= thr).any(axis=1).sum()), int((b >= thr).any(axis=1).sum())],
            "n_sites": [len(sites[0]), len(sites[1])], "sites_same": bool(same)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--optical", type=Path, required=True)
    ap.add_argument("--thermal", type=Path, default=None)
    ap.add_argument("--block-px", type=int, default=512, help="block side in model-grid pixels")
    ap.add_argument("--se", choices=["global", "local"], default="global",
                    help="squeeze-excitation pooling over the block (global) or a tile-sized window (local)")
    ap.add_argument("--stride-m", type=float, default=None)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)
    setup_logging(quiet=True)
    emit(run(args) | {"mode": "block"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
