"""TorchGeo's grid pipeline on a minewatch scene, in the TorchGeo benchmark venv; prints one JSON line.

RasterDataset (optical) & RasterDataset (thermal) -> IntersectionDataset -> GridGeoSampler (the model's
tile size and stride, in pixels of the model grid) -> DataLoader(stack_samples) -> the same network and
weights as minewatch (the checkpoint, built with ``minewatch.train.models.build_model``) in eager PyTorch.

Model input per batch, as minewatch's features: reflectance normalised by the checkpoint's mean/std, the
thermal excess over a background (here the tile's median: a cheaper stand-in for minewatch's scene-wide
robust background, which TorchGeo does not offer) clipped and scaled, and the thermal validity mask.

Modes: ``scan`` (read + model) and ``read`` (the sampler and loader alone).
Usage: python bench/tg_child.py MODE --optical O --thermal T --checkpoint C [--workers 0] [--batch 32]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torchgeo.datasets import IntersectionDataset, RasterDataset, stack_samples
from torchgeo.samplers import GridGeoSampler, Units

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import peak_rss_mb  # noqa: E402  (standard library only: importable from the TorchGeo venv)


class Optical(RasterDataset):
    """The optical GeoTIFF of a scene folder (uint8 RGB, nodata 0)."""

    filename_glob = "optical.tif"
    all_bands = ("red", "green", "blue")
    rgb_bands = ("red", "green", "blue")


class Thermal(RasterDataset):
    """The thermal GeoTIFF (float32 kelvin, nodata -9999) on its own grid."""

    filename_glob = "thermal.tif"


REPO = Path(__file__).resolve().parents[1]


def _build_model():
    """``minewatch.train.models.build_model``: installed (``pip install -e . --no-deps``) or from the repo."""
    try:
        from minewatch.train.models import build_model
    except ImportError:
        sys.path.insert(0, str(REPO))
        import minewatch

        minewatch.__path__.append(str(REPO))  # the repo's train/ folder is minewatch.train
        from minewatch.train.models import build_model
    return build_model


def load_network(checkpoint: Path) -> tuple[torch.nn.Module, dict]:
    """The checkpoint's network, built exactly as minewatch builds it, and its metadata dict."""
    build_model = _build_model()

    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    meta = json.loads(ckpt["meta"])
    model = build_model(meta["backbone"], len(meta["channels"]), len(meta["classes"]))
    model.load_state_dict(ckpt["model_state"])
    return model.eval(), meta


def model_input(image: torch.Tensor, meta: dict, scale: float) -> torch.Tensor:
    """(N, 4, H, W) RGB digital numbers + kelvin -> (N, 5, H, W) model input."""
    mean = torch.tensor(meta["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(meta["std"]).view(1, -1, 1, 1)
    optical = (image[:, :3] * scale - mean) / std
    kelvin = image[:, 3]
    valid = (kelvin > 0) & torch.isfinite(kelvin)
    flat = torch.where(valid, kelvin, torch.nan).flatten(1)
    background = torch.nanmedian(flat, dim=1).values.nan_to_num(0.0).view(-1, 1, 1)
    th = meta["thermal"]
    dt = torch.where(valid, kelvin - background, 0.0).clamp(-th["dt_clip_k"], th["dt_clip_k"]) / th["dt_scale_k"]
    return torch.cat([optical, dt[:, None], valid[:, None].float()], dim=1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["scan", "read"])
    ap.add_argument("--optical", type=Path, required=True)
    ap.add_argument("--thermal", type=Path, required=True)
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--stride-m", type=float, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    model, meta = load_network(args.checkpoint)
    gsd = meta["gsd_m"]
    tile_px = meta["tile_px"]
    stride_px = round((args.stride_m or meta["stride_m"]) / gsd)
    optical = Optical(paths=[str(args.optical)], res=gsd)
    thermal = Thermal(paths=[str(args.thermal)], res=gsd)
    dataset = IntersectionDataset(optical, thermal)
    sampler = GridGeoSampler(dataset, size=tile_px, stride=stride_px, units=Units.PIXELS)
    loader = DataLoader(dataset, sampler=sampler, batch_size=args.batch, num_workers=args.workers,
                        collate_fn=stack_samples)
    n = 0
    scale = 1 / 255
    with torch.inference_mode():
        for batch in loader:
            image = batch["image"]
            n += image.shape[0]
            if args.mode == "scan":
                torch.sigmoid(model(model_input(image, meta, scale)))
    seconds = time.perf_counter() - t0
    peak = peak_rss_mb()
    if args.workers:
        peak += resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    import torchgeo

    sys.stdout.write(json.dumps({
        "mode": f"tg_{args.mode}", "seconds": seconds, "n_tiles": n, "tiles_per_s": n / seconds,
        "workers": args.workers, "peak_rss_mb": round(peak, 1), "torchgeo": torchgeo.__version__,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
    }) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
