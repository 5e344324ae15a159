"""What the dense head costs a scan: the same scene, the same backbone weights, with and without the head.

From one dense checkpoint three ONNX files are written: the classifier alone (the decoder's weights dropped:
what a model without the head costs), the dense model as exported (the decoder runs on the windows some
class calls positive), and the dense model with its gate held open (the decoder on every window: the worst
case, a scene that is all farm). Each scans the scene ``--repeats`` times in its own process
(``bench/child.py scan``); figures are medians.

  python bench/bench_dense.py --checkpoint runs/dense/best.pt --sizes 2048 4096 [--repeats 3]

Prints a markdown table: seconds, tiles/s, the head's cost relative to the classifier alone, and the ratio
over TorchGeo's grid pipeline this implies from BENCHMARKS.md's figure for the classifier (same machine
state assumed: the ratio of two scans run side by side here carries over, absolute seconds do not).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median, run_child  # noqa: E402
from scenes import ROOT, scene_files  # noqa: E402

TORCHGEO_RATIO = {4096: 3.9, 10000: 4.8, 20000: 5.6}
"""minewatch (classifier) over TorchGeo per scene size, from BENCHMARKS.md / the README (medians of 3)."""


def write_models(checkpoint: Path, folder: Path) -> dict[str, Path]:
    """classifier-only, dense (gated as exported) and dense with the gate open, from one checkpoint."""
    import torch

    from minewatch.train.checkpoint import load_checkpoint, load_model
    from minewatch.train.export import _export_graph
    from minewatch.train.models import ProbabilityModel, build_model

    model, meta = load_model(checkpoint)
    if not meta.masks:
        raise SystemExit(f"{checkpoint} has no dense head")
    plain = build_model(meta.backbone, len(meta.channels), len(meta.classes))
    plain.load_state_dict({k: v for k, v in load_checkpoint(checkpoint)["model_state"].items()
                           if not k.startswith("decoder.")})
    out = {"classifier": folder / "classifier.onnx", "dense": folder / "dense.onnx",
           "dense, gate open": folder / "dense-open.onnx"}
    _export_graph(ProbabilityModel(plain.eval()).eval(), meta.model_copy(update={"masks": (), "mask_px": None}),
                  out["classifier"])
    _export_graph(ProbabilityModel(model).eval(), meta, out["dense"])
    with torch.no_grad():
        opened = meta.model_copy(update={"thresholds": {c: 1e-6 for c in meta.classes}})
        _export_graph(ProbabilityModel(model).eval(), opened, out["dense, gate open"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, required=True, help="a checkpoint trained with model.masks")
    ap.add_argument("--sizes", type=int, nargs="+", default=[4096])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--root", type=Path, default=ROOT, help="cache of benchmark scenes")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="mw-bench-dense-") as tmp:
        models = write_models(args.checkpoint, Path(tmp))
        for size in args.sizes:
            optical, thermal = scene_files(size, args.root)
            base = None
            for name, model in models.items():
                runs = [run_child(["bench/child.py", "scan", "--optical", str(optical), "--thermal", str(thermal),
                                   "--model", str(model)]) for _ in range(args.repeats)]
                seconds = median([r["seconds"] for r in runs])
                base = seconds if base is None else base
                rows.append({"size": size, "model": name, "seconds": round(seconds, 3),
                             "tiles": runs[0]["n_tiles"], "tiles_per_s": round(runs[0]["n_tiles"] / seconds, 1),
                             "sites": runs[0]["n_sites"], "cost": round(seconds / base - 1, 3),
                             "peak_rss_mb": max(r["peak_rss_mb"] for r in runs), "runs": len(runs)})
    from run_all import md_table

    def implied(r: dict) -> str:
        tg = TORCHGEO_RATIO.get(r["size"])
        return f"x{tg / (1 + r['cost']):.1f}" if tg else "n/a"

    print("\n".join(md_table(
        "| scene (px) | model | tiles | scan (s) | tiles/s | head's cost | implied ratio over TorchGeo | "
        "peak RSS (MB) |", "|---:|---|---:|---:|---:|---:|---:|---:|",
        ([r["size"], r["model"], r["tiles"], f"{r['seconds']:.2f}", f"{r['tiles_per_s']:.0f}", f"{r['cost']:+.0%}",
          implied(r), f"{r['peak_rss_mb']:.0f}"] for r in rows))))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
