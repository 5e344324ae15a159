"""Many scenes: a multi-scene scan on Dask (1 and 2 local workers) against a plain shell loop of one-scene scans,
side by side; and peak memory of a VRT mosaic scan against one scene.

Usage: python bench/bench_many.py [--count 16] [--size 1600] [--runs 3] [--write BENCHMARKS.md]
Every configuration is one child process timed from outside (wall clock, Python start-up included), the
configurations alternating within each run; medians of ``--runs``. All write the same outputs per scene
(sites, tiles, heatmap, quicklook). With --write the "## Many scenes" section of the file is replaced.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import MINEWATCH, PY, emit, machine_info  # noqa: E402

SECTION = "## Many scenes"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=16)
    ap.add_argument("--size", type=int, default=1600, help="scene side, optical pixels at 0.2 m")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mosaic", type=int, default=4, help="the VRT mosaic is N x N copies of one scene")
    ap.add_argument("--scene-outputs", default="sites,tiles,heatmap",
                    help="what every scene writes, of sites,tiles,heatmap,quicklook (a quicklook PNG costs more "
                         "than the scan of a small scene)")
    ap.add_argument("--write", type=Path, default=None)
    ap.add_argument("--child-scan", nargs=3, metavar=("OPTICAL", "THERMAL", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child_scan:
        return _child_scan(*args.child_scan)
    started = time.perf_counter()
    load_before = loadavg()
    with tempfile.TemporaryDirectory(prefix="bench-many-") as tmp:
        root = Path(tmp)
        from minewatch.datasets.synth import generate_scenes

        t0 = time.perf_counter()
        generate_scenes(root / "scenes", seed=930_000, count=args.count, size=args.size)
        print(f"generated {args.count} scenes of {args.size} px in {time.perf_counter() - t0:.0f} s", flush=True)
        many = [MINEWATCH, "scan", str(root / "scenes"), "--scene-outputs", args.scene_outputs]
        configs = {
            "shell loop of one-scene scans": _loop_cmd(root, args.scene_outputs.split(",")),
            "minewatch scan DIR, in-process (--no-cluster)": [*many, "--no-cluster"],
            "minewatch scan DIR, Dask LocalCluster, 1 worker": [*many, "--workers", "1"],
            "minewatch scan DIR, Dask LocalCluster, 2 workers": [*many, "--workers", "2"],
        }
        times: dict[str, list[float]] = {k: [] for k in configs}
        task_s: dict[str, list[float]] = {k: [] for k in configs}
        for run in range(args.runs):
            order = list(configs) if run % 2 == 0 else list(reversed(configs))
            for name in order:
                out = root / f"out-{run}-{list(configs).index(name)}"
                cmd = configs[name]
                cmd = [*cmd, "-o", str(out)] if cmd[0] == MINEWATCH else ["bash", "-c", cmd.replace("OUT", str(out))]
                t = time.perf_counter()
                proc = subprocess.run(cmd, capture_output=True, text=True)
                times[name].append(time.perf_counter() - t)
                if proc.returncode != 0:
                    raise SystemExit(f"{name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
                if (out / "run.json").exists():
                    doc = json.loads((out / "run.json").read_text())
                    task_s[name].append(sum(s["seconds"] for s in doc["scenes"]))
                print(f"run {run + 1}: {name}: {times[name][-1]:.1f} s", flush=True)
        memory = _memory(root, args)
    rows = {k: statistics.median(v) for k, v in times.items()}
    text = _report(args, rows, {k: statistics.median(v) for k, v in task_s.items() if v}, memory,
                   time.perf_counter() - started, load_before)
    print(text)
    if args.write:
        _write_section(args.write, text)
    return 0


def loadavg() -> str:
    return " / ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine_line() -> str:
    m = machine_info()
    from importlib import metadata

    return (f"{m['cores']} cores, {m['cpu']}, {m['ram_gib']} GiB RAM; Python {m['python']}, dask "
            f"{metadata.version('dask')}, distributed {metadata.version('distributed')}")


def _loop_cmd(root: Path, outputs: list[str]) -> str:
    scan = shlex.quote(MINEWATCH)
    flags = {"tiles": "--tiles-out OUT/$n/tiles.gpkg", "heatmap": "--heatmap OUT/$n/heatmap.tif",
             "quicklook": "--quicklook OUT/$n/quicklook.png"}
    extra = " ".join(flags[o] for o in outputs if o in flags)
    return (f"for d in {shlex.quote(str(root / 'scenes'))}/*/; do n=$(basename $d); mkdir -p OUT/$n; "
            f"{scan} scan $d/optical.tif --thermal $d/thermal.tif -o OUT/$n/sites.geojson {extra} "
            ">/dev/null || exit 1; done")


def _child_scan(optical: str, thermal: str, out: str) -> int:
    from minewatch.infer.scan import ScanRequest, run_scan

    t = time.perf_counter()
    result = run_scan(ScanRequest(raster=Path(optical), thermal=Path(thermal), out=Path(out), overwrite=True))
    emit({"seconds": round(time.perf_counter() - t, 3), "tiles": result.n_scanned + result.n_skipped})
    return 0


def _memory(root: Path, args: argparse.Namespace) -> list[tuple[str, int, dict]]:
    """Peak RSS of one scan of a scene and of a VRT mosaic of N x N copies of it (one file read 16 times)."""
    import rasterio

    scene = sorted((root / "scenes").iterdir())[0]
    rows = []
    vrts = {}
    for band in ("optical", "thermal"):
        with rasterio.open(scene / f"{band}.tif") as ds:
            w, h, count, dtype, desc, nodata = ds.width, ds.height, ds.count, ds.dtypes[0], ds.descriptions, ds.nodata
            t, crs, tags = ds.transform, ds.crs, ds.tags()
        n = args.mosaic
        gdal = {"uint8": "Byte", "float32": "Float32", "uint16": "UInt16"}[dtype]
        lines = [f'<VRTDataset rasterXSize="{w * n}" rasterYSize="{h * n}"><SRS>{crs.to_wkt()}</SRS>',
                 f"<GeoTransform>{t.c!r}, {t.a!r}, 0, {t.f!r}, 0, {t.e!r}</GeoTransform><Metadata>",
                 *(f'<MDI key="{k}">{v}</MDI>' for k, v in tags.items()), "</Metadata>"]
        for b in range(1, count + 1):
            lines.append(f'<VRTRasterBand dataType="{gdal}" band="{b}"><Description>{desc[b - 1] or ""}</Description>'
                         + (f"<NoDataValue>{nodata!r}</NoDataValue>" if nodata is not None else ""))
            for i in range(n):
                for j in range(n):
                    lines.append(f'<SimpleSource><SourceFilename relativeToVRT="0">{scene / f"{band}.tif"}'
                                 f"</SourceFilename><SourceBand>{b}</SourceBand>"
                                 f'<SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>'
                                 f'<DstRect xOff="{j * w}" yOff="{i * h}" xSize="{w}" ySize="{h}"/></SimpleSource>')
            lines.append("</VRTRasterBand>")
        lines.append("</VRTDataset>")
        vrts[band] = root / f"mosaic-{band}.vrt"
        vrts[band].write_text("\n".join(lines))
    for label, opt, th, side in (("one scene (GeoTIFF)", scene / "optical.tif", scene / "thermal.tif", args.size),
                                 (f"VRT mosaic of {args.mosaic} x {args.mosaic} copies", vrts["optical"],
                                  vrts["thermal"], args.size * args.mosaic)):
        proc = subprocess.run([PY, __file__, "--child-scan", str(opt), str(th), str(root / "mem.geojson")],
                              capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(proc.stderr[-2000:])
        rows.append((label, side, json.loads(proc.stdout.strip().splitlines()[-1])))
    return rows


def _report(args, rows: dict[str, float], task_s: dict[str, float], memory, elapsed: float, load_before: str) -> str:
    loop = rows["shell loop of one-scene scans"]
    one = rows["minewatch scan DIR, Dask LocalCluster, 1 worker"]
    two = rows["minewatch scan DIR, Dask LocalCluster, 2 workers"]
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cmd = (f"python bench/bench_many.py --count {args.count} --size {args.size} --runs {args.runs} "
           f"--scene-outputs {args.scene_outputs}")
    lines = [SECTION, "",
             f"`{cmd}` ({stamp}, {elapsed / 60:.0f} min): {args.count} generated drone scenes of {args.size} x "
             f"{args.size} px (0.2 m optical + 0.8 m thermal, {args.size * 0.2:.0f} m square; small, so that the "
             "whole comparison runs in minutes on this shared 2-core machine), every configuration a child process "
             "timed from outside, configurations alternating, medians of "
             f"{args.runs}. Every configuration writes the same per-scene outputs "
             f"({args.scene_outputs.replace(',', ', ')}); "
             "the `minewatch scan DIR` runs also merge the sites of all scenes.",
             "", f"- {machine_line()}; load average {load_before} at the start, {loadavg()} at the end", "",
             "| configuration | seconds | scenes per hour | vs shell loop | scan time inside tasks (s) |",
             "|---|---:|---:|---:|---:|"]
    for name, s in rows.items():
        inside = f"{task_s[name]:.1f}" if name in task_s else "-"
        lines.append(f"| {name} | {s:.1f} | {args.count / s * 3600:,.0f} | x{loop / s:.2f} | {inside} |")
    overhead = (one - loop) / loop * 100
    lines += ["", f"- Dask with 1 worker against the plain loop: {overhead:+.1f} % wall time "
              f"(goal: overhead <= 5 %: {'met' if overhead <= 5 else 'missed'}).",
              f"- 2 workers against 1: x{one / two:.2f} on 2 cores.", "",
              "Peak memory of one scan (`run_scan`, child process's VmHWM) of a scene and of a VRT mosaic of copies of"
              " it, read lazily through the VRT like a GeoTIFF:", "",
              "| raster | side (px) | tiles | seconds | peak RSS (MB) |", "|---|---:|---:|---:|---:|"]
    for label, side, r in memory:
        lines.append(f"| {label} | {side} | {r['tiles']} | {r['seconds']:.1f} | {r['peak_rss_mb']:.0f} |")
    return "\n".join(lines) + "\n"


def _write_section(path: Path, text: str) -> None:
    doc = path.read_text() if path.exists() else ""
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    hand = ""
    m = pattern.search(doc)
    if m and "<!-- hand-written -->" in m.group(0):
        hand = m.group(0)[m.group(0).index("<!-- hand-written -->"):]
    new = text + ("\n" + hand if hand else "")
    doc = pattern.sub(lambda _: new + "\n", doc) if m else doc.rstrip("\n") + "\n\n" + new
    path.write_text(doc)
    os.sync()


if __name__ == "__main__":
    sys.exit(main())
