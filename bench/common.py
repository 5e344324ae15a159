"""Shared helpers of the benchmark scripts: paths, model files, child processes, medians, machine facts.

Every measured configuration runs in its own child process that prints one JSON line last; peak memory is
the child's own high-water mark (``VmHWM``), so one run never inherits another's allocations.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from minewatch.memory import proc_kib

REPO = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO / ".bench"
PY = sys.executable
MINEWATCH = str(Path(PY).with_name("minewatch"))
DEFAULT_MODEL = REPO / "models" / "minewatch-drone.onnx"
DEFAULT_CHECKPOINT = REPO / "runs" / "default" / "best.pt"
COMMITTED_CHECKPOINT = REPO / "models" / "minewatch-drone.pt"
"""The committed model's weights as a checkpoint (``make model`` writes it beside the ONNX file): what the torch
and TorchGeo paths run on a fresh clone, where no ``runs/default`` exists."""

log = logging.getLogger("bench")


class ChildError(RuntimeError):
    """A measured child process failed; carries the tail of its stderr."""


def seconds_of(fn: Callable[..., object], *args: object, **kwargs: object) -> float:
    """Wall time of one call."""
    t0 = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - t0


def peak_rss_mb() -> float:
    """Peak resident memory of this process's own address space, MiB.

    ``VmHWM`` from /proc (Linux), not ``ru_maxrss``: the latter keeps the high-water mark of the address
    space replaced by ``exec``, i.e. of the parent that spawned the child (vfork), which inflated every
    figure by the parent's peak. Elsewhere ``ru_maxrss`` is the fallback.
    """
    hwm = proc_kib("/proc/self/status", "VmHWM")
    return hwm / 1024 if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def emit(result: dict[str, Any]) -> None:
    """Print a child's result as the last line of stdout (the parent parses it)."""
    result.setdefault("peak_rss_mb", round(peak_rss_mb(), 1))
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def run_child(args: list[str], *, python: str = PY, timeout: float | None = None,
              env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``python args...`` and return the JSON object on its last stdout line."""
    cmd = [python, *args]
    full_env = {**os.environ, **(env or {})}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env, cwd=REPO)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise ChildError(f"{' '.join(cmd)} exited {proc.returncode}:\n{tail}")
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.startswith("{")]
    if not lines:
        raise ChildError(f"{' '.join(cmd)} printed no JSON result:\n{proc.stdout[-2000:]}")
    result = json.loads(lines[-1])
    result["child_wall_s"] = round(wall, 3)
    return result


def median(values: list[float]) -> float:
    return float(statistics.median(values))


@dataclass(frozen=True)
class Models:
    """The same network three ways: fp32 ONNX, int8 ONNX and the torch checkpoint."""

    onnx: Path
    int8: Path
    checkpoint: Path
    note: str


def _minewatch(*args: str) -> None:
    cmd = [MINEWATCH, *args, "-q"]
    log.info("running %s", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise ChildError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")


def _fresh(target: Path, source: Path) -> bool:
    return target.is_file() and target.stat().st_mtime >= source.stat().st_mtime


def resolve_models(model: Path | None, checkpoint: Path | None, int8: Path | None = None) -> Models:
    """The benchmark's models: the last ``make model`` run's checkpoint (``runs/default/best.pt``), else the
    committed one (``models/minewatch-drone.pt``, the weights of the committed ONNX file), else a smoke model
    trained into ``.bench/smoke``.

    The torch and TorchGeo paths need the checkpoint, so without one every path uses the smoke model
    (the same network everywhere matters more than using the committed ONNX file).
    """
    note = ""
    ckpt = checkpoint or next((p for p in (DEFAULT_CHECKPOINT, COMMITTED_CHECKPOINT) if p.is_file()),
                              DEFAULT_CHECKPOINT)
    if not ckpt.is_file():
        if checkpoint is not None:
            raise ChildError(f"checkpoint not found: {checkpoint}")
        smoke = BENCH_DIR / "smoke"
        ckpt = smoke / "best.pt"
        if not ckpt.is_file():
            _minewatch("train", "--config", "smoke", "--out", str(smoke), "--device", "cpu")
        model = smoke / "model.onnx"
        note = (f"{DEFAULT_CHECKPOINT.relative_to(REPO)} and {COMMITTED_CHECKPOINT.relative_to(REPO)} absent: "
                f"smoke-config model trained into {smoke}")
    onnx_path = model or DEFAULT_MODEL
    if not onnx_path.is_file():
        onnx_path = BENCH_DIR / "models" / f"{ckpt.parent.name}-{ckpt.stem}.onnx"
        if not _fresh(onnx_path, ckpt):
            onnx_path.parent.mkdir(parents=True, exist_ok=True)
            _minewatch("export", str(ckpt), "-o", str(onnx_path))
    int8_path = int8 or BENCH_DIR / "models" / f"{onnx_path.stem}-int8.onnx"
    if int8 is None and not _fresh(int8_path, ckpt):
        int8_path.parent.mkdir(parents=True, exist_ok=True)
        _minewatch("export", str(ckpt), "-o", str(int8_path), "--int8")
    return Models(onnx_path, int8_path, ckpt, note)


def machine_info() -> dict[str, str]:
    """Cores, CPU model, memory and the versions that matter for the figures."""
    cpu = "unknown"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = proc_kib("/proc/meminfo", "MemTotal") or 0
    versions = {}
    for name in ("numpy", "rasterio", "onnxruntime", "torch", "torchvision"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    from rasterio import __gdal_version__

    return {
        "cores": str(os.cpu_count()),
        "cpu": cpu,
        "ram_gib": f"{mem_kb / 1024**2:.1f}",
        "python": platform.python_version(),
        "os": platform.platform(),
        "gdal": __gdal_version__,
        **versions,
    }
