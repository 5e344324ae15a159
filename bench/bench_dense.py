"""What the dense head costs a scan: the same scene, the same backbone weights, with and without the head.

From one dense checkpoint three ONNX files are written: the classifier alone (the decoder's weights dropped:
what a model without the head costs), the dense model as exported (the decoder runs on the windows some
class calls positive), and the dense model with its gate held open (the decoder on every window: the worst
case, a scene that is all farm). Each scans the scene in its own process (``bench/child.py scan``), the
configurations taking turns, ``--repeats`` rounds; figures are medians.

With ``--torchgeo`` TorchGeo's grid pipeline (``bench/tg_child.py`` in the venv of ``bench/setup_torchgeo.sh``,
the classifier's network in eager PyTorch, DataLoader workers=2 and torch threads=1: its fastest setting in
BENCHMARKS.md) takes its turn in the same rounds, and the table gives each scan's ratio over it as measured
side by side. Without it the ratio is implied from BENCHMARKS.md's figure for the classifier.

  python bench/bench_dense.py --checkpoint runs/dense/best.pt --sizes 4096 --repeats 5 --torchgeo

Prints a markdown table: seconds, tiles/s, the head's cost relative to the classifier alone, and the ratio
over TorchGeo's grid pipeline.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_all import Config, child, ensure_torchgeo, md_table, measure_rows, tg  # noqa: E402
from scenes import ROOT, scene_files  # noqa: E402

TORCHGEO_RATIO = {4096: 3.9, 10000: 4.8, 20000: 5.6}
"""minewatch (classifier) over TorchGeo per scene size, from BENCHMARKS.md / the README (medians of 3)."""


def write_models(checkpoint: Path, folder: Path) -> dict[str, Path]:
    """classifier-only, dense (gated as exported) and dense with the gate open, from one checkpoint; and the
    classifier-only checkpoint (``classifier.pt``) TorchGeo's side builds its network from."""
    import torch

    from minewatch.train.checkpoint import load_checkpoint, load_model, save_checkpoint
    from minewatch.train.export import _export_graph
    from minewatch.train.models import ProbabilityModel, build_model

    model, meta = load_model(checkpoint)
    if not meta.masks:
        raise SystemExit(f"{checkpoint} has no dense head")
    plain = build_model(meta.backbone, len(meta.channels), len(meta.classes))
    ckpt = load_checkpoint(checkpoint)
    plain.load_state_dict({k: v for k, v in ckpt["model_state"].items() if not k.startswith("decoder.")})
    plain_meta = meta.model_copy(update={"masks": (), "mask_px": None})
    save_checkpoint(folder / "classifier.pt", {"meta": plain_meta.to_json(), "config": ckpt["config"],
                                               "model_state": plain.state_dict()})
    out = {"classifier": folder / "classifier.onnx", "dense": folder / "dense.onnx",
           "dense, gate open": folder / "dense-open.onnx"}
    _export_graph(ProbabilityModel(plain.eval()).eval(), plain_meta, out["classifier"])
    _export_graph(ProbabilityModel(model).eval(), meta, out["dense"])
    with torch.no_grad():
        opened = meta.model_copy(update={"thresholds": {c: 1e-6 for c in meta.classes}})
        _export_graph(ProbabilityModel(model).eval(), opened, out["dense, gate open"])
    return out


TG_SETTING = (2, 1)
"""TorchGeo's DataLoader workers and torch threads: its fastest setting in BENCHMARKS.md's scan table."""
TG_NAME = "TorchGeo grid pipeline (classifier)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, required=True, help="a checkpoint trained with model.masks")
    ap.add_argument("--sizes", type=int, nargs="+", default=[4096])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--torchgeo", action="store_true",
                    help="measure TorchGeo's grid pipeline in the same rounds (creates .venv-bench if needed)")
    ap.add_argument("--tg-python", default=None, help="the TorchGeo venv's python (default: .venv-bench)")
    ap.add_argument("--root", type=Path, default=ROOT, help="cache of benchmark scenes")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()
    tg_python = ensure_torchgeo(args.tg_python) if args.torchgeo else None
    rows = []
    with tempfile.TemporaryDirectory(prefix="mw-bench-dense-") as tmp:
        models = write_models(args.checkpoint, Path(tmp))
        for size in args.sizes:
            optical, thermal = scene_files(size, args.root)
            configs = [Config("dense", name, size, child("scan", optical, thermal, "--model", str(model)))
                       for name, model in models.items()]
            if tg_python:
                configs.append(Config("dense", TG_NAME, size, tg("scan", optical, thermal, Path(tmp) / "classifier.pt",
                                                                 *TG_SETTING), python=tg_python))
            measured = {r.name: r for r in measure_rows(configs, args.repeats)}
            base = measured["classifier"].seconds
            for name, r in measured.items():
                rows.append({"size": size, "model": name, "seconds": round(r.seconds, 3), "tiles": r.tiles,
                             "tiles_per_s": round(r.tiles / r.seconds, 1), "cost": round(r.seconds / base - 1, 3),
                             "over_torchgeo": round(measured[TG_NAME].seconds / r.seconds, 2) if tg_python else None,
                             "peak_rss_mb": r.rss, "runs": len(r.runs)})

    def ratio(r: dict) -> str:
        if r["over_torchgeo"] is not None:
            return f"x{r['over_torchgeo']:.2f}"
        tg = TORCHGEO_RATIO.get(r["size"])
        return f"x{tg / (1 + r['cost']):.1f} (implied)" if tg else "n/a"

    print("\n".join(md_table(
        "| scene (px) | model | tiles | scan (s) | tiles/s | head's cost | ratio over TorchGeo | peak RSS (MB) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
        ([r["size"], r["model"], r["tiles"], f"{r['seconds']:.2f}", f"{r['tiles_per_s']:.0f}",
          f"{r['cost']:+.0%}" if r["model"] != TG_NAME else "-", ratio(r), f"{r['peak_rss_mb']:.0f}"]
         for r in rows))))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
