"""All benchmarks side by side: minewatch's scan paths, TorchGeo's grid pipeline, the limits, the data module.

Every measured configuration runs in its own child process (``bench/child.py`` in this venv,
``bench/tg_child.py`` in the TorchGeo venv made by ``bench/setup_torchgeo.sh``), ``--repeats`` times;
figures are medians, peak RSS the largest of the runs.

  python bench/run_all.py --quick                          # 2048 px scene, a few minutes; prints figures
  python bench/run_all.py --full --write BENCHMARKS.md     # 4096, 10000 and 20000 px scenes

The last line printed is ``scan/torchgeo speed ratio: X`` (scene megapixels per second of minewatch's
default scan, onnxruntime fp32, over TorchGeo's best DataLoader setting, on the largest scene).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PY, REPO, Models, machine_info, median, resolve_models, run_child  # noqa: E402
from scenes import scene_files  # noqa: E402

log = logging.getLogger("bench")
TG_VENV = REPO / ".venv-bench"
BENCH_OUT = REPO / ".bench" / "out"
TG_NAME = "TorchGeo, DataLoader workers="
TUNE_BASE = "unchanged scan (baseline)"
TUNE_TORCH = "unchanged torch (eager) scan (baseline)"
DENSE_NAME = "minewatch onnxruntime fp32, dense head"
DEFAULT_DENSE = REPO / "runs" / "dense" / "minewatch-drone-dense.onnx"
"""What ``make model-dense`` writes; measured beside the classifier's scan when it exists (#18's goal: x3 with
the head)."""
SLOW_S = 240.0
"""A configuration whose run takes longer than this is not repeated (its row says 1 run)."""
QUICK_SIZES = (2048,)
FULL_SIZES = (4096, 10000, 20000)


@dataclass
class Row:
    """One configuration's runs: medians of time and throughput, the largest peak RSS."""

    section: str
    name: str
    size: int
    runs: list[dict] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return median([r["seconds"] for r in self.runs])

    @property
    def tiles(self) -> int:
        return int(self.runs[0].get("n_tiles", 0))

    @property
    def tiles_per_s(self) -> float:
        return median([r["n_tiles"] / r["seconds"] for r in self.runs])

    @property
    def mpix_per_s(self) -> float:
        return median([self.size**2 / 1e6 / r["seconds"] for r in self.runs])

    @property
    def rss(self) -> float:
        return max(r["peak_rss_mb"] for r in self.runs)


@dataclass(frozen=True)
class Config:
    """One measured configuration: a child command line in one of the two venvs."""

    section: str
    name: str
    size: int
    args: list[str]
    python: str = PY
    env: dict[str, str] | None = None


class Bench:
    """Runs the configurations and keeps the rows."""

    def __init__(self, models: Models, repeats: int, tg_python: str | None) -> None:
        self.models = models
        self.repeats = repeats
        self.tg_python = tg_python
        self.rows: list[Row] = []
        self.extra: dict[str, object] = {}

    def measure_all(self, configs: list[Config]) -> list[Row]:
        """:func:`measure_rows` of ``configs``, kept and logged."""
        rows = measure_rows(configs, self.repeats)
        for row in rows:
            self.rows.append(row)
            log.info("%-9s %-34s %6d px  %8.2f s  %8.1f tiles/s  %7.1f MP/s  %6.0f MB", row.section, row.name,
                     row.size, row.seconds, row.tiles_per_s if row.tiles else 0, row.mpix_per_s, row.rss)
        return rows

    def get(self, section: str, name: str, size: int) -> Row | None:
        return next((r for r in self.rows if (r.section, r.name, r.size) == (section, name, size)), None)


def measure_rows(configs: list[Config], repeats: int) -> list[Row]:
    """Run every configuration ``repeats`` times, interleaved (A B C A B C ...), so that load from other
    users of a shared machine falls on all of them alike; a run slower than ``SLOW_S`` is not repeated."""
    rows = [Row(c.section, c.name, c.size) for c in configs]
    for _ in range(repeats):
        for c, row in zip(configs, rows, strict=True):
            if row.runs and row.runs[-1]["seconds"] > SLOW_S:
                continue
            row.runs.append(run_child(c.args, python=c.python, env=c.env))
    return rows


def child(mode: str, optical: Path, thermal: Path, *extra: str) -> list[str]:
    return [str(REPO / "bench" / "child.py"), mode, "--optical", str(optical), "--thermal", str(thermal), *extra]


def tg(mode: str, optical: Path, thermal: Path, checkpoint: Path, workers: int, threads: int) -> list[str]:
    return [str(REPO / "bench" / "tg_child.py"), mode, "--optical", str(optical), "--thermal", str(thermal),
            "--checkpoint", str(checkpoint), "--workers", str(workers), "--threads", str(threads)]


def ensure_torchgeo(python: str | None) -> str:
    """The TorchGeo venv's python, creating ``.venv-bench`` with ``bench/setup_torchgeo.sh`` if needed."""
    if python:
        return python
    subprocess.run(["bash", str(REPO / "bench" / "setup_torchgeo.sh"), str(TG_VENV)], check=True, cwd=REPO)
    return str(TG_VENV / "bin" / "python")


def run(args: argparse.Namespace) -> Bench:
    BENCH_OUT.mkdir(parents=True, exist_ok=True)
    models = resolve_models(args.model, args.checkpoint, args.int8_model)
    bench = Bench(models, args.repeats, ensure_torchgeo(args.tg_python))
    bench.extra["load_start"] = loadavg()
    sizes = args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES)
    onnx = ["--model", str(models.onnx)]
    if args.tune_only:
        tune(bench, sizes[0], *scene_files(sizes[0]))
        return bench
    tg_setting: tuple[int, int] | None = None
    for size in sizes:
        opt, th = scene_files(size)
        first = size == sizes[0]
        configs = [Config("scan", name, size, child("scan", opt, th, "--model", str(model)))
                   for name, model in engines(models).items()]
        if args.dense_model:
            configs.append(Config("scan", DENSE_NAME, size, child("scan", opt, th, "--model", str(args.dense_model))))
        settings = [tg_setting] if tg_setting else [(w, t) for w in args.tg_workers for t in args.tg_threads]
        for w, t in settings:
            configs.append(Config("scan", f"{TG_NAME}{w}, torch threads={t}", size,
                                  tg("scan", opt, th, models.checkpoint, w, t), python=bench.tg_python))
        for name, model in engines(models).items():
            if first or model == models.onnx:
                configs.append(Config("ceiling", name, size, child("ceiling", opt, th, "--model", str(model),
                                                                   "--tiles", str(args.ceiling_tiles))))
        for level, name in (("native", "every block at full resolution"),
                            ("overview", "optical from the overview a 0.5 m read uses")):
            configs.append(Config("floor", f"I/O floor: {name}", size,
                                  child("floor", opt, th, *onnx, "--level", level)))
        configs.append(Config("read", "minewatch data module (scan reader)", size, child("read", opt, th, *onnx)))
        if size <= args.max_read_size:
            for w in sorted({w for w, _ in settings}):
                configs.append(Config("read", f"TorchGeo sampler + DataLoader, workers={w}", size,
                                      tg("read", opt, th, models.checkpoint, w, 1), python=bench.tg_python))
        rows = bench.measure_all(configs)
        if tg_setting is None:  # larger scenes: TorchGeo's best setting on the first scene only
            best = min((r for r in rows if r.name.startswith(TG_NAME)), key=lambda r: r.seconds)
            w_text, t_text = best.name[len(TG_NAME):].split(", torch threads=")
            tg_setting = (int(w_text), int(t_text))
            bench.extra["tg_pilot"] = (f"TorchGeo's DataLoader workers x torch threads settings were all measured "
                                       f"on the {size} px scene; the larger scenes use the fastest, "
                                       f"workers={tg_setting[0]}, torch threads={tg_setting[1]}.")
        prof = Row("profile", "minewatch onnxruntime fp32 under cProfile", size)
        prof.runs.append(run_child(child("profile", opt, th, *onnx)))
        bench.rows.append(prof)
    if args.full or args.tune:
        tune_size = sizes[1] if len(sizes) > 1 else sizes[0]
        tune(bench, tune_size, *scene_files(tune_size))
    opt, th = scene_files(sizes[0])
    bench.measure_all([Config("block", f"block {args.block_px} px, SE {se}", sizes[0],
                              [str(REPO / "bench" / "block_inference.py"), "--checkpoint", str(models.checkpoint),
                               "--optical", str(opt), "--thermal", str(th), "--block-px", str(args.block_px),
                               "--se", se]) for se in ("global", "local")])
    if args.full:
        out = subprocess.run([PY, str(REPO / "bench" / "bench_synth.py"), "--size", "4096", "--runs", "3"],
                             capture_output=True, text=True, check=True, cwd=REPO).stdout.strip()
        bench.extra["synth"] = out
    return bench


def engines(models: Models) -> dict[str, Path]:
    return {"minewatch onnxruntime fp32": models.onnx, "minewatch onnxruntime int8": models.int8,
            "minewatch torch (eager)": models.checkpoint}


def tune(bench: Bench, size: int, opt: Path, th: Path) -> None:
    """One change at a time to the product's scan (onnxruntime fp32 unless named), interleaved with the
    unchanged scan so that each is compared with a baseline measured under the same load."""
    m = bench.models
    onnx = ["--model", str(m.onnx)]
    variants = [
        (TUNE_BASE, onnx, {}),
        ("onnxruntime on both cores (MINEWATCH_THREADS=2)", onnx, {"MINEWATCH_THREADS": "2"}),
        ("batch 128", [*onnx, "--batch", "128"], {}),
        ("GDAL_NUM_THREADS=1", onnx, {"GDAL_NUM_THREADS": "1"}),
        ("GDAL_CACHEMAX=64 (the former default)", onnx, {"GDAL_CACHEMAX": "64"}),
        (TUNE_TORCH, ["--model", str(m.checkpoint)], {}),
        ("torch (eager) on both cores (MINEWATCH_THREADS=2, the former default)", ["--model", str(m.checkpoint)],
         {"MINEWATCH_THREADS": "2"}),
    ]
    bench.measure_all([Config("tune", name, size, child("scan", opt, th, *extra), env=env or None)
                       for name, extra, env in variants])


# ------------------------------------------------------------------------------------------ report
def fmt(x: float, digits: int = 1) -> str:
    return f"{x:,.{digits}f}"


def md_table(head: str, align: str, rows: Iterable[Sequence[object]]) -> list[str]:
    """A Markdown table: the title row, the alignment row, then one row a list of cells."""
    return [head, align, *("| " + " | ".join(str(c) for c in row) + " |" for row in rows)]


def section(bench: Bench, name: str) -> list[Row]:
    return [r for r in bench.rows if r.section == name]


def scan_table(bench: Bench) -> list[str]:
    return md_table("| scene (px) | tiles | pipeline | runs | seconds | tiles/s | scene MP/s | peak RSS (MB) |",
                    "|---:|---:|---|---:|---:|---:|---:|---:|",
                    ([r.size, r.tiles, r.name, len(r.runs), fmt(r.seconds, 2), fmt(r.tiles_per_s),
                      fmt(r.mpix_per_s, 2), fmt(r.rss, 0)] for r in section(bench, "scan")))


def limits_table(bench: Bench) -> list[str]:
    ceiling = [[f"model ceiling, {r.name} (batches of 32 in memory)", r.size, fmt(r.seconds, 2), fmt(r.tiles_per_s),
                "-", fmt(r.rss, 0)] for r in section(bench, "ceiling")]
    floor = [[f"{r.name} (optical + thermal, no resampling)", r.size, fmt(r.seconds, 2), "-", fmt(r.mpix_per_s),
              fmt(r.rss, 0)] for r in section(bench, "floor")]
    return md_table("| limit | scene (px) | seconds | tiles/s | MP/s | peak RSS (MB) |",
                    "|---|---:|---:|---:|---:|---:|", ceiling + floor)


def read_table(bench: Bench) -> list[str]:
    return md_table("| scene (px) | reader | tiles | seconds | tiles/s | peak RSS (MB) |",
                    "|---:|---|---:|---:|---:|---:|",
                    ([r.size, r.name, r.tiles, fmt(r.seconds, 2), fmt(r.tiles_per_s), fmt(r.rss, 0)]
                     for r in section(bench, "read")))


def tune_table(bench: Bench) -> list[str]:
    def speed(r: Row) -> str:
        ref = bench.get("tune", TUNE_TORCH if "torch" in r.name else TUNE_BASE, r.size)
        return f"x{ref.seconds / r.seconds:.2f}" if ref else "-"

    return md_table("| variant | scene (px) | seconds | tiles/s | scene MP/s | peak RSS (MB) | vs default scan |",
                    "|---|---:|---:|---:|---:|---:|---:|",
                    ([r.name, r.size, fmt(r.seconds, 2), fmt(r.tiles_per_s), fmt(r.mpix_per_s, 2), fmt(r.rss, 0),
                      speed(r)] for r in section(bench, "tune")))


def growth_table(bench: Bench) -> list[str]:
    scans = section(bench, "scan")
    sizes = sorted({r.size for r in scans})
    names = list(dict.fromkeys(r.name for r in scans))
    head = " | ".join(f"{s} px: ms/tile, RSS MB" for s in sizes)

    def cell(name: str, size: int) -> str:
        r = bench.get("scan", name, size)
        return f"{fmt(1000 / r.tiles_per_s, 2)}, {fmt(r.rss, 0)}" if r else "-"

    return md_table(f"| pipeline | {head} |", "|---|" + "---:|" * len(sizes),
                    ([name, *(cell(name, s) for s in sizes)] for name in names))


def block_table(bench: Bench) -> list[str]:
    def cells(r: Row) -> list[object]:
        x = r.runs[0]
        return [r.name, r.size, fmt(median([q["tile_tiles_per_s"] for q in r.runs])),
                fmt(median([q["block_tiles_per_s"] for q in r.runs])), f"x{median([q['speedup'] for q in r.runs]):.2f}",
                f"{x['max_abs_prob_diff']:.4f}", f"{x['mean_abs_prob_diff']:.4f}", f"{x['decision_agreement']:.3f}",
                x["positive_tiles"], x["n_sites"], "yes" if x["sites_same"] else "no"]

    return md_table("| variant | scene (px) | per-tile model tiles/s | block model tiles/s | speed-up | "
                    "max abs prob diff | mean abs prob diff | tile decisions agree | positive tiles (tile, block) | "
                    "sites (tile, block) | same sites |", "|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|",
                    (cells(r) for r in section(bench, "block")))


def goals(bench: Bench) -> tuple[list[str], float]:
    """Goal lines and the headline scan/TorchGeo ratio (largest scene)."""
    sizes = sorted({r.size for r in bench.rows if r.section == "scan"})
    lines = []
    ratio = float("nan")
    for s in sizes:
        mw = bench.get("scan", "minewatch onnxruntime fp32", s)
        tgs = [r for r in bench.rows if r.section == "scan" and r.size == s and r.name.startswith("TorchGeo")]
        if mw and tgs:
            best = max(tgs, key=lambda r: r.mpix_per_s)
            ratio = mw.mpix_per_s / best.mpix_per_s
            lines.append(f"- {s} px: scan/TorchGeo = x{ratio:.2f} ({fmt(mw.mpix_per_s, 2)} vs "
                         f"{fmt(best.mpix_per_s, 2)} MP/s, {best.name}); goal x3: "
                         f"{'met' if ratio >= 3 else 'missed'}")
            dense = bench.get("scan", DENSE_NAME, s)
            if dense:
                head = dense.mpix_per_s / best.mpix_per_s
                lines.append(f"- {s} px, with the dense head: scan/TorchGeo = x{head:.2f} "
                             f"({fmt(dense.mpix_per_s, 2)} MP/s; the head costs {dense.seconds / mw.seconds - 1:+.0%} "
                             f"over the classifier's scan); goal x3: {'met' if head >= 3 else 'missed'}")
    for s in sizes:
        mw = bench.get("scan", "minewatch onnxruntime fp32", s)
        ceil = bench.get("ceiling", "minewatch onnxruntime fp32", s)
        if mw and ceil:
            share = mw.tiles_per_s / ceil.tiles_per_s
            reader = bench.get("read", "minewatch data module (scan reader)", s)
            bound = ""
            if reader:  # the reader runs on one core; the ceiling keeps every core busy with the model
                cores = os.cpu_count() or 1
                most = cores / (1 / reader.tiles_per_s + cores / ceil.tiles_per_s)
                bound = (f"; if reading ({fmt(reader.tiles_per_s)} tiles/s on one core) and the model shared "
                         f"the {cores} cores perfectly, a scan could reach at most {fmt(most)} tiles/s, "
                         f"{most / ceil.tiles_per_s:.0%} of the ceiling")
            lines.append(f"- {s} px: scan at {share:.0%} of the onnxruntime model ceiling "
                         f"({fmt(mw.tiles_per_s)} vs {fmt(ceil.tiles_per_s)} tiles/s); goal >= 90 %: "
                         f"{'met' if share >= 0.9 else 'missed'}{bound}")
    rss = [(s, bench.get("scan", "minewatch onnxruntime fp32", s)) for s in sizes]
    rss = [(s, r.rss) for s, r in rss if r]
    if rss:
        (s0, m0), (s1, m1) = rss[0], rss[-1]
        lines.append(f"- peak RSS {fmt(m0, 0)} MB at {s0} px -> {fmt(m1, 0)} MB at {s1} px "
                     f"({(s1 / s0) ** 2:.0f}x the pixels, x{m1 / m0:.2f} the memory); goal <= ~1 GB: "
                     f"{'met' if m1 <= 1024 else 'missed'}; flat (within x1.2): "
                     f"{'met' if m1 <= 1.2 * m0 else 'missed'}")
    return lines, ratio


def breakdown(bench: Bench) -> list[str]:
    """Where a scan's time goes: a cProfile of the main thread, the reader alone and the model alone."""
    lines = []
    for p in (r for r in bench.rows if r.section == "profile"):
        run = p.runs[0]
        total = run["seconds"]
        parts = ", ".join(f"{name} {fmt(sec, 2)} s ({sec / total:.0%})" for name, sec in run["parts"].items())
        lines.append(f"- {p.size} px, one profiled scan of {fmt(total, 2)} s (main thread): {parts}.")
    last = None
    for r in (r for r in bench.rows if r.section == "read" and r.name.startswith("minewatch")):
        scan = bench.get("scan", "minewatch onnxruntime fp32", r.size)
        ceil = bench.get("ceiling", "minewatch onnxruntime fp32", r.size)
        if scan and ceil:
            model_s = scan.tiles / ceil.tiles_per_s
            lines.append(f"- {r.size} px: the reader alone takes {fmt(r.seconds, 2)} s and the model alone "
                         f"{fmt(model_s, 2)} s, against {fmt(scan.seconds, 2)} s for the whole scan.")
            last = (r, scan)
    if last is not None:
        r, scan = last
        lines += ["", f"In short: the scan runs the model on one thread while the reader thread uses the other core, "
                  f"busy {r.seconds / scan.seconds:.0%} of the scan at {r.size} px; the main thread hardly waits for "
                  "it, so the model on one core is what bounds the scan. The ceiling runs the model on every core and "
                  "reads nothing, which is why a scan on 2 cores stays far from it; a second model thread "
                  "(MINEWATCH_THREADS=2) competes with the reader and is slower (table below)."]
    return lines


def report(bench: Bench, args: argparse.Namespace, elapsed: float) -> str:
    info = machine_info()
    tg_version = next((r.runs[0].get("torchgeo") for r in bench.rows if r.runs and "torchgeo" in r.runs[0]), "?")
    goal_lines, _ = goals(bench)
    m = bench.models
    parts = [
        "# minewatch benchmarks", "",
        f"Written by `bench/run_all.py {'--full' if args.full else '--quick'}` in {elapsed / 60:.0f} min "
        f"({time.strftime('%Y-%m-%d %H:%M %Z')}). Medians of {bench.repeats} runs (one where a run took over "
        f"{SLOW_S:.0f} s), each configuration in its "
        "own process; peak RSS = the largest high-water mark (`VmHWM`) of those processes (TorchGeo with "
        "workers: main process + largest worker's `ru_maxrss`, which counts pages shared with the main "
        "process twice).", "",
        "## Machine", "",
        f"- {info['cores']} cores, {info['cpu']}, {info['ram_gib']} GiB RAM; {info['os']}; load average "
        f"(1/5/15 min) {bench.extra.get('load_start')} at the start, {loadavg()} at the end (a shared machine)",
        f"- Python {info['python']}, numpy {info['numpy']}, rasterio {info['rasterio']} (GDAL {info['gdal']}), "
        f"onnxruntime {info['onnxruntime']}, torch {info['torch']}, torchvision {info['torchvision']}; "
        f"TorchGeo {tg_version} (separate venv `.venv-bench`)",
        f"- Model: `{_rel(m.onnx)}` (fp32), `{_rel(m.int8)}` (int8 QDQ), checkpoint `{_rel(m.checkpoint)}` for "
        "torch and TorchGeo" + (f". {m.note}" if m.note else ""), "",
        "## Goals", "", *goal_lines, "",
        "## Full scan", "",
        "`minewatch scan` (`run_scan`: model load, scene open, thermal background, streaming read, model, "
        "sites GeoJSON) on generated drone scenes (optical 0.2 m RGB + thermal 0.8 m; 10000 and 20000 px are "
        "mosaics of the 4096 px scene, `bench/scenes.py`), against TorchGeo's RasterDataset & RasterDataset "
        "-> GridGeoSampler -> DataLoader -> the same network and weights in eager PyTorch, same tile size "
        "and stride on the same 0.5 m model grid. Scene MP/s counts optical pixels at 0.2 m."
        + (f" `{DENSE_NAME}`: `{_rel(args.dense_model)}` (`make model-dense`), the same backbone with the "
           "decoder that outlines sites by their objects and counts containers (README, \"Site outlines, "
           "containers and power\")." if args.dense_model else ""), "",
        *scan_table(bench), "", str(bench.extra.get("tg_pilot", "")), "",
        "## Limits", "",
        "The ceiling: the model alone on pre-loaded batches of real tiles. The floor: every block of both "
        "files read once in full-width strips, without resampling (MP/s counts the scene's optical pixels "
        "at 0.2 m, so the two floors compare with the scan's MP/s).", "",
        *limits_table(bench), "",
        "## Data module reading vs TorchGeo's sampler", "",
        "Every planned tile read and turned into a model input (minewatch: strip reads of the scene, thermal "
        "anomaly, features, as `scan` reads; TorchGeo: its sampler and DataLoader, no model).", "",
        *read_table(bench), "",
        "## Growth with scene size", "", *growth_table(bench), "",
        "## Where the time goes", "", *breakdown(bench), "",
        *(["### One change at a time", "", *tune_table(bench), ""]
          if any(r.section == "tune" for r in bench.rows) else []),
        "## Block inference experiment (bench/block_inference.py)", "",
        "The trunk run once per block, pooled per tile, against per-tile inference (torch, same tiles).", "",
        *block_table(bench), "",
        "## Synthetic generator", "",
        "4096 x 4096 drone scene: " + _synth(bench.extra.get("synth")) + " (bench/bench_synth.py)", "",
        "## Model quality", "", "(filled in by the lead)", "",
        "## Commands", "",
        "```", "make bench          # python bench/run_all.py --full --write BENCHMARKS.md",
        "make bench-quick    # python bench/run_all.py --quick", "bash bench/setup_torchgeo.sh   # .venv-bench",
        "python bench/block_inference.py --checkpoint runs/default/best.pt --optical O --thermal T", "```", "",
    ]
    return "\n".join(parts)


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages (other users' work on a shared machine shows here)."""
    return " / ".join(Path("/proc/loadavg").read_text().split()[:3])


def _rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(REPO))
    except ValueError:
        return str(p)


def _synth(line: object) -> str:
    match = re.search(r"median ([\d.]+) s over (\d+) runs", str(line or ""))
    return f"{match.group(1)} s median of {match.group(2)}" if match else "not measured in this run"


def _sections(doc: str) -> dict[str, str]:
    """``## `` sections of a Markdown report, heading -> text (heading included)."""
    parts = doc.split("\n## ")
    return {"## " + p.split("\n", 1)[0]: "## " + p for p in parts[1:]}


def keep_sections(text: str, previous: Path, hand_written: tuple[str, ...] = ("## Model quality",)) -> str:
    """Carry hand-written sections over from the report being replaced: ``hand_written`` ones replace
    their placeholders, and sections this script does not write (e.g. the tiled/striped table of
    ``bench/bench_layout.py``) are kept, before the synthetic-generator section."""
    if not previous.exists():
        return text
    old, new = _sections(previous.read_text()), _sections(text)
    for heading in hand_written:
        if heading in old and heading in new:
            text = text.replace(new[heading].rstrip("\n"), old[heading].rstrip("\n"))
    extra = [body.rstrip("\n") for heading, body in old.items() if heading not in new]
    anchor = "## Synthetic generator"
    if extra and anchor in text:
        text = text.replace(anchor, "\n\n".join(extra) + "\n\n" + anchor, 1)
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--quick", action="store_true", help="2048 px scene, a few minutes")
    mode.add_argument("--full", action="store_true", help="4096, 10000 and 20000 px scenes")
    ap.add_argument("--write", type=Path, default=None, help="write the report (Markdown) here")
    ap.add_argument("--model", type=Path, default=None, help="ONNX model (default models/minewatch-drone.onnx)")
    ap.add_argument("--checkpoint", type=Path, default=None, help="checkpoint (default runs/default/best.pt)")
    ap.add_argument("--int8-model", type=Path, default=None, help="int8 ONNX (default: exported into .bench/)")
    ap.add_argument("--dense-model", type=Path, default=DEFAULT_DENSE if DEFAULT_DENSE.is_file() else None,
                    help="a model with a dense head, scanned beside the classifier (default: "
                         f"{DEFAULT_DENSE.relative_to(REPO)} when make model-dense has written it)")
    ap.add_argument("--tg-python", default=None, help="python of a TorchGeo venv (default: make .venv-bench)")
    ap.add_argument("--tg-workers", type=lambda s: [int(x) for x in s.split(",")], default=[0, 2],
                    help="DataLoader workers to try for TorchGeo on the first scene (the best is kept)")
    ap.add_argument("--tg-threads", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2],
                    help="torch intra-op threads to try for TorchGeo on the first scene (the best is kept)")
    ap.add_argument("--sizes", type=lambda s: tuple(int(x) for x in s.split(",")), default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ceiling-tiles", type=int, default=None)
    ap.add_argument("--max-read-size", type=int, default=4096, help="largest scene for TorchGeo in the reading table")
    ap.add_argument("--tune", action="store_true", help="also measure one change at a time (always in --full)")
    ap.add_argument("--tune-only", action="store_true", help="only the one-change-at-a-time table")
    ap.add_argument("--block-px", type=int, default=512)
    args = ap.parse_args(argv)
    args.ceiling_tiles = args.ceiling_tiles or (320 if args.quick else 1280)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    t0 = time.perf_counter()
    bench = run(args)
    (BENCH_OUT / "results.json").write_text(json.dumps(
        {"rows": [vars(r) for r in bench.rows], "extra": bench.extra}, indent=1, default=str))
    text = report(bench, args, time.perf_counter() - t0)
    if args.write:
        text = keep_sections(text, args.write)
        args.write.write_text(text)
        log.info("wrote %s", args.write)
    sys.stdout.write(text)
    _, ratio = goals(bench)
    sys.stdout.write(f"\nscan/torchgeo speed ratio: {ratio:.2f}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
