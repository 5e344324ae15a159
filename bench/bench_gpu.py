"""GPU training and inference throughput of the committed architecture: fp32 against mixed precision with
channels-last (what ``minewatch train`` uses on CUDA), at several batch sizes.

The network alone on inputs already on the device (windows of 5 x 128 x 128: RGB, thermal excess and
validity), so the figure is the model's ceiling; in a real run the CPU side (reading windows, augmentation)
feeds it. Medians of ``--repeats`` timed blocks of ``--steps`` steps after warm-up, CUDA-synchronised.

Usage: python bench/bench_gpu.py [--backbone mobilenet_v3_small] [--steps 50] [--repeats 5]
Runs from a checkout without installing minewatch (only torch and torchvision are needed).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _build_model():
    """``minewatch.train.models.build_model`` from the checkout (no install, no other dependency)."""
    sys.path.insert(0, str(ROOT))
    import minewatch  # noqa: F401 - the package of minewatch/ in the checkout

    pkg = types.ModuleType("minewatch.train")
    pkg.__path__ = [str(ROOT / "train")]
    sys.modules.setdefault("minewatch.train", pkg)
    spec = importlib.util.spec_from_file_location("minewatch.train.models", ROOT / "train" / "models.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["minewatch.train.models"] = module
    spec.loader.exec_module(module)
    return module.build_model


def _time(step, steps: int, repeats: int, sync) -> float:
    """Median seconds per step."""
    for _ in range(max(3, steps // 5)):
        step()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        times.append((time.perf_counter() - t0) / steps)
    return statistics.median(times)


def measure(model, dev, batch: int, amp: bool, steps: int, repeats: int, sync) -> dict:
    """Training-step and inference throughput of one configuration (tiles per second)."""
    import torch

    fmt = torch.channels_last if amp else torch.contiguous_format
    model = model.to(dev).to(memory_format=fmt)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler(dev.type, enabled=amp)
    x = torch.randn(batch, 5, 128, 128, device=dev).contiguous(memory_format=fmt)
    y = (torch.rand(batch, 3, device=dev) > 0.7).float()
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def train_step() -> None:
        with torch.autocast(dev.type, dtype=torch.float16, enabled=amp):
            loss = loss_fn(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    def infer_step() -> None:
        with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.float16, enabled=amp):
            torch.sigmoid(model(x).float())

    model.train()
    train_s = _time(train_step, steps, repeats, sync)
    model.eval()
    infer_s = _time(infer_step, steps, repeats, sync)
    return {"batch": batch, "amp_channels_last": amp, "train_tiles_per_s": round(batch / train_s),
            "infer_tiles_per_s": round(batch / infer_s)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="mobilenet_v3_small")
    ap.add_argument("--batches", default="32,128,512")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args(argv)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        sys.stderr.write("no CUDA device: this benchmark measures a GPU (pass --device cpu to try it)\n")
        return 2
    dev = torch.device(args.device)
    build_model = _build_model()
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    rows = []
    for batch in (int(b) for b in args.batches.split(",")):
        for amp in (False, True):
            rows.append(measure(build_model(args.backbone, 5, 3), dev, batch, amp and dev.type == "cuda",
                                args.steps, args.repeats, sync))
            sys.stdout.write(json.dumps(rows[-1]) + "\n")
    name = torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu"
    sys.stdout.write(json.dumps({"device": name, "torch": torch.__version__, "backbone": args.backbone,
                                 "rows": rows}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
