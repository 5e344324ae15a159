"""Many scenes at once: one Dask task per scene, per-scene outputs, then the sites of all scenes merged.

Each task is :func:`scan_scene`, a call of the one-scene scan (`infer.scan.run_scan`) on one scene's inputs; it
returns a :class:`SceneOutcome` instead of raising, so one failing scene is reported with its one-line reason and
the others go on. Tasks run on a ``LocalCluster`` sized to the machine (one process per worker, one scene and one
model thread at a time each), on an existing cluster (``tcp://HOST:8786``, workers reading the same paths), or in
this process (``in_process``). A worker that dies mid-scene (killed, out of memory) has its scene rescheduled by
the Dask scheduler on another worker, up to ``distributed.scheduler.allowed-failures`` times.

Output folder::

    DIR/<scene_id>/sites.geojson, tiles.gpkg, heatmap.tif, quicklook.png   # as `minewatch scan` writes them
    DIR/<scene_id>/lone_sites.geojson  # what the site rule decided by this scene alone, for the merge
    DIR/<scene_id>/scan.json     # written last: the scene is complete (inputs fingerprint, footprint, counts)
    DIR/sites.geojson, DIR/sites.gpkg                                         # every scene's sites merged
    DIR/run.json                 # the run: options, every scene's status and reason

``--resume`` skips every scene whose ``scan.json`` matches its inputs and options and whose outputs exist, and
continues a half-scanned scene from its tile journal.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import shapely

from minewatch.atomic import atomic_path
from minewatch.clock import now_utc
from minewatch.errors import UserError, first_line
from minewatch.infer.inputs import SceneInput, materialize
from minewatch.infer.merge import DEFAULT_GAP_M, merge_sites, read_scene_sites, write_merged
from minewatch.infer.scan_settings import ScanSettings

log = logging.getLogger(__name__)

MARKER = "scan.json"
LONE_SITES = "lone_sites.geojson"
OUTPUT_NAMES = {"sites": "sites.geojson", "tiles": "tiles.gpkg", "heatmap": "heatmap.tif",
                "quicklook": "quicklook.png"}
DEFAULT_OUTPUTS = ("sites", "tiles", "heatmap", "quicklook")


def parse_outputs(text: str | None) -> tuple[str, ...]:
    """``--scene-outputs`` (comma-separated names of `OUTPUT_NAMES`; sites are always written)."""
    if text is None:
        return DEFAULT_OUTPUTS
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in OUTPUT_NAMES]
    if unknown:
        raise UserError(f"unknown scene output(s) {', '.join(unknown)}",
                        fix=f"use a comma-separated list of {', '.join(OUTPUT_NAMES)}")
    return tuple(n for n in OUTPUT_NAMES if n in names or n == "sites")
SCHEDULER_TIMEOUT_S = 10
"""How long to try reaching an existing scheduler before giving up."""
WORKER_MEMORY_GB = 1.0
"""Memory a worker needs for one scan (peak RSS ~0.4 GB at 20000 px plus the worker itself): the local cluster
never starts more workers than the machine's memory holds at this much each."""


@dataclass(kw_only=True)
class ScanOptions(ScanSettings):
    """What every scene of a run is scanned with (the one-scene scan's settings, and the run's own)."""

    allow_remote: bool = False
    max_tiles: int | None = None
    outputs: tuple[str, ...] = DEFAULT_OUTPUTS
    models: tuple[tuple[str, Path], ...] = ()  # without --model: the committed models each scene chooses from

    def fingerprint(self, scene: SceneInput, model_sha256: str) -> str:
        """What a finished scene's outputs depend on: its inputs, the model and the options that change results."""
        key = {"scene": {k: v for k, v in asdict(scene).items() if k not in ("origin", "error")},
               "model_sha256": model_sha256, "geofence": _stat(self.geofence), "exclude": _stat(self.exclude),
               "profile": self.profile, "thermal_units": self.thermal_units, "stride_m": self.stride_m,
               "nodata": self.nodata, "scale": self.scale, "bands": self.bands, "outputs": sorted(self.outputs)}
        if self.thermal_only:
            key["thermal_only"] = True
        return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _stat(p: Path | None) -> list | None:
    if p is None:
        return None
    try:
        st = Path(p).stat()
        return [str(Path(p).resolve()), st.st_size, st.st_mtime_ns]
    except OSError:
        return [str(p)]


@dataclass(frozen=True)
class Cluster:
    """Where the tasks run: an existing scheduler, a LocalCluster, or this process."""

    scheduler: str | None = None
    workers: int | None = None
    threads_per_worker: int = 1
    memory_limit: str = "auto"
    in_process: bool = False


@dataclass
class SceneOutcome:
    scene_id: str
    status: str  # done | skipped | failed
    origin: str = ""
    reason: str | None = None
    bad_input: bool = False  # the failure is the input's (a UserError), not minewatch's or the machine's
    n_sites: int = 0
    n_tiles: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    worker: str | None = None
    model: str | None = None  # the model that scanned it (chosen per scene without --model)
    footprint: str | None = None  # the ground its windows covered, lon/lat WKT (none for a thermal-only scan)


@dataclass
class RunSummary:
    out_dir: Path
    outcomes: list[SceneOutcome]
    n_sites: int
    seconds: float
    outputs: list[Path]
    where: str

    @property
    def failed(self) -> list[SceneOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def exit_code(self) -> int:
        """0 when every scene was scanned; 2 when only bad inputs failed; 1 when any other failure did."""
        if not self.failed:
            return 0
        return 2 if all(o.bad_input for o in self.failed) else 1

    def table(self) -> str:
        width = max([5, *(len(o.scene_id) for o in self.outcomes)])
        lines = [f"{'scene':<{width}}  {'status':<7}  {'sites':>5}  {'tiles':>7}  {'seconds':>7}  reason or model"]
        for o in self.outcomes:
            nums = (f"{o.n_sites:>5}  {o.n_tiles:>7}  {o.seconds:>7.1f}" if o.status != "failed"
                    else f"{'-':>5}  {'-':>7}  {'-':>7}")
            lines.append(f"{o.scene_id:<{width}}  {o.status:<7}  {nums}  {o.reason or o.model or ''}".rstrip())
        counts = {s: sum(o.status == s for o in self.outcomes) for s in ("done", "skipped", "failed")}
        tiles = sum(o.n_tiles for o in self.outcomes if o.status == "done")
        rate = f" ({tiles / self.seconds:,.0f} tiles/s)" if self.seconds > 0 and tiles else ""
        lines.append(f"{len(self.outcomes)} scenes: {counts['done']} scanned, {counts['skipped']} already complete, "
                     f"{counts['failed']} failed; {self.n_sites} site(s) after merging "
                     f"({sum(o.n_sites for o in self.outcomes)} per scene); {tiles:,} tiles in {self.seconds:.1f} s"
                     f"{rate} {self.where}")
        lines += [f"  wrote {p}" for p in self.outputs]
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ the task
def scan_scene(scene: SceneInput, out_dir: str, options: ScanOptions, fingerprint: str) -> SceneOutcome:
    """Scan one scene into ``out_dir/<scene_id>/`` (the Dask task). Never raises for a bad scene: the outcome
    carries the one-line reason."""
    from minewatch.datasets.thermal import is_thermal_raster
    from minewatch.datasets.vrt import remote_reads
    from minewatch.infer.scan import ScanRequest, run_scan
    from minewatch.progress import quiet_progress

    start = time.perf_counter()
    outcome = SceneOutcome(scene.scene_id, "failed", origin=scene.origin, worker=_worker_name())
    folder = Path(out_dir) / scene.scene_id
    with _captured_warnings(outcome.warnings), quiet_progress(), remote_reads(options.allow_remote):
        try:
            if scene.error:
                raise UserError(scene.error)
            if scene.remote and not options.allow_remote:
                raise UserError("the scene is read over the network", path=scene.origin,
                                fix="pass --allow-remote to allow remote reads, or give local copies")
            folder.mkdir(parents=True, exist_ok=True)
            (folder / MARKER).unlink(missing_ok=True)
            for stale in folder.glob(".*.tmp*"):  # half-written files of a worker killed in this scene
                stale.unlink(missing_ok=True)
            optical, thermal = materialize(scene, folder)
            out = {k: folder / OUTPUT_NAMES[k] for k in options.outputs}
            thermal_only = options.thermal_only or (thermal is None and is_thermal_raster(optical,
                                                                                          options.thermal_units))
            if thermal_only:  # heat anomalies of the thermal band alone: no windows, so no tiles
                if thermal is None and not is_thermal_raster(optical, options.thermal_units):
                    raise UserError("the scene has no thermal raster for --thermal-only", path=scene.origin,
                                    fix="give scenes with a thermal band (Landsat B10 + MTL, ST_B10, thermal.tif)")
                optical, thermal = (thermal or optical), None
                out.pop("tiles", None)
                (folder / LONE_SITES).unlink(missing_ok=True)  # an earlier windowed scan's
            # The run owns DIR/<scene_id>/ (checked once in run_many): a retried task replaces what an
            # interrupted attempt may have left.
            request = ScanRequest(
                **{**options.settings(), "overwrite": True, "thermal_only": thermal_only},
                raster=optical, thermal=thermal, out=folder / OUTPUT_NAMES["sites"], tiles_out=out.get("tiles"),
                heatmap=out.get("heatmap"), quicklook=out.get("quicklook"), scene_id=scene.scene_id,
                lone_out=None if thermal_only else folder / LONE_SITES,
                acquired=scene.acquired, models=dict(options.models) or None,
                **({"max_tiles": options.max_tiles} if options.max_tiles else {}))
            result = run_scan(request)
            outcome.model = result.provenance.get("model")
            outcome.footprint = result.provenance.get("footprint")
            outcome.status = "done"
            outcome.n_sites = len(result.sites)
            outcome.n_tiles = result.n_scanned + result.n_skipped
            outcome.seconds = time.perf_counter() - start
            _write_marker(folder, scene, fingerprint, outcome, [p for p in result.outputs if Path(p).exists()])
        except UserError as err:
            outcome.reason, outcome.bad_input = (scene.error or err.one_line()), True
        except Exception as exc:  # noqa: BLE001 - one scene's internal error must not stop the others
            log.debug("scene %s failed", scene.scene_id, exc_info=True)
            outcome.reason = f"internal error: {type(exc).__name__}: {first_line(exc)}"
    outcome.seconds = time.perf_counter() - start
    return outcome


def _worker_name() -> str | None:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return None


_CAPTURE_LOCK = threading.Lock()
_CAPTURING = [0, True]  # tasks capturing now in this process, the logger's own propagate setting


@contextmanager
def _captured_warnings(sink: list[str]) -> Iterator[None]:
    """Collect the scan's warnings for the outcome (the client prints them once, with the scene's id) instead of
    letting each worker print its own. With several threads per worker, concurrent scenes share the capture."""
    logger = logging.getLogger("minewatch")

    class Sink(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            sink.append(first_line(Exception(record.getMessage()), 300))

    handler = Sink(logging.WARNING)
    with _CAPTURE_LOCK:
        if _CAPTURING[0] == 0:
            _CAPTURING[1] = logger.propagate
            logger.propagate = False
        _CAPTURING[0] += 1
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        with _CAPTURE_LOCK:
            _CAPTURING[0] -= 1
            if _CAPTURING[0] == 0:
                logger.propagate = _CAPTURING[1]


def _write_marker(folder: Path, scene: SceneInput, fingerprint: str, outcome: SceneOutcome, outputs: list) -> None:
    doc = {"scene_id": scene.scene_id, "fingerprint": fingerprint, "origin": scene.origin,
           "optical": scene.optical, "thermal": scene.thermal, "bands": [asdict(b) for b in scene.bands],
           "acquired": scene.acquired, "sensor": scene.sensor, "n_sites": outcome.n_sites,
           "n_tiles": outcome.n_tiles, "seconds": round(outcome.seconds, 3), "outputs": [Path(p).name for p in outputs],
           "footprint": outcome.footprint, "finished": now_utc()}
    with atomic_path(folder / MARKER) as tmp:
        tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def complete(folder: Path, fingerprint: str) -> dict | None:
    """The scene's marker when its outputs are complete and were made from the same inputs and options."""
    try:
        doc = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if doc.get("fingerprint") != fingerprint:
        return None
    if not all((folder / name).is_file() for name in doc.get("outputs", [])):
        return None
    return doc


# ------------------------------------------------------------------------------------------------ the run
def run_many(scenes: list[SceneInput], out_dir: Path, options: ScanOptions, cluster: Cluster, *,
             gap_m: float = DEFAULT_GAP_M, on_scene: Callable[[int, int, SceneOutcome, float], None] | None = None,
             on_start: Callable[[str], None] | None = None) -> RunSummary:
    """Scan ``scenes`` into ``out_dir`` and merge their sites; see the module doc."""
    from minewatch.infer.model_file import file_sha256
    from minewatch.infer.registry import committed_models, make_target

    start = time.perf_counter()
    out_dir = _prepare(out_dir).resolve()
    # Workers elsewhere have another working folder: every path they get is absolute.
    options = replace(options, geofence=_absolute(options.geofence), exclude=_absolute(options.exclude))
    if options.model is not None:
        model = Path(options.model).resolve()
        if not model.is_file():
            raise UserError("model not found", path=model, fix="check the path")
        options = replace(options, model=model)
        model_sha = file_sha256(Path(model))
    else:  # each scene chooses the committed model of its sensor profile (infer/registry.py)
        found = {p: f.resolve() for p, f in committed_models().items() if f is not None}
        if not found and not options.thermal_only:
            raise UserError("no committed model found", fix=f"run '{make_target('drone')}' or pass --model")
        options = replace(options, models=tuple(sorted(found.items())))
        model = "chosen per scene: " + ", ".join(str(f) for f in found.values())
        model_sha = hashlib.sha256(json.dumps({p: file_sha256(f) for p, f in found.items()},
                                              sort_keys=True).encode()).hexdigest()
    run_id, created = uuid.uuid4().hex[:12], now_utc()
    fingerprints = {s.scene_id: options.fingerprint(s, model_sha) for s in scenes}
    if not (options.overwrite or options.resume):
        previous = [s.scene_id for s in scenes
                    if any((out_dir / s.scene_id / n).exists() for n in OUTPUT_NAMES.values())]
        if previous:
            raise UserError(f"the output folder holds outputs of an earlier run ({len(previous)} scene(s), e.g. "
                            f"{previous[0]})", path=out_dir,
                            fix="pass --resume to skip the complete scenes, --overwrite to scan them again, or "
                                "choose another -o")
    results: dict[str, SceneOutcome] = {}
    todo = []
    for s in scenes:
        marker = complete(out_dir / s.scene_id, fingerprints[s.scene_id]) if options.resume else None
        if marker is not None:
            results[s.scene_id] = SceneOutcome(s.scene_id, "skipped", origin=s.origin, reason="already complete",
                                               n_sites=marker.get("n_sites", 0), n_tiles=marker.get("n_tiles", 0),
                                               footprint=marker.get("footprint"))
        elif s.error:
            results[s.scene_id] = SceneOutcome(s.scene_id, "failed", origin=s.origin, reason=s.error, bad_input=True)
        else:
            todo.append(s)
    done_count = [len(results)]
    tiles = [0]

    def finished(outcome: SceneOutcome) -> None:
        results[outcome.scene_id] = outcome
        done_count[0] += 1
        tiles[0] += outcome.n_tiles if outcome.status == "done" else 0
        for w in outcome.warnings:
            log.warning("%s: %s", outcome.scene_id, w)
        if on_scene:
            on_scene(done_count[0], len(scenes), outcome, tiles[0] / max(time.perf_counter() - start, 1e-9))

    if cluster.in_process:
        where = "in this process"
        if on_start:
            on_start(f"scanning {len(todo)} of {len(scenes)} scene(s) in this process")
        for s in todo:
            finished(scan_scene(s, str(out_dir), options, fingerprints[s.scene_id]))
    else:
        where = _run_dask(todo, out_dir, options, fingerprints, cluster, run_id, finished, on_start, len(scenes))
    outcomes = [results[s.scene_id] for s in scenes]
    ok = [o for o in outcomes if o.status in ("done", "skipped")]
    lone = [p for p in (out_dir / o.scene_id / LONE_SITES for o in ok) if p.is_file()]
    merged = merge_sites(read_scene_sites([out_dir / o.scene_id / OUTPUT_NAMES["sites"] for o in ok]),
                         run_id=run_id, created=created, gap_m=gap_m, lone=read_scene_sites(lone),
                         footprints=[shapely.from_wkt(o.footprint) for o in ok if o.footprint])
    outputs = write_merged(merged, out_dir, run={"run_id": run_id, "created": created})
    summary = RunSummary(out_dir, outcomes, len(merged), time.perf_counter() - start, outputs, where)
    outputs.append(_write_run(out_dir, summary, options, run_id, created, model, model_sha))
    return summary


def _absolute(p: Path | None) -> Path | None:
    return Path(p).resolve() if p is not None else None


def _prepare(out_dir: Path) -> Path:
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError("the output path is a file; a multi-scene scan writes a folder", path=out_dir,
                        fix="give a folder name with -o")
    if out_dir.suffix.lower() in (".geojson", ".json", ".gpkg"):
        raise UserError("a multi-scene scan writes a folder, not one file", path=out_dir,
                        fix="give a folder with -o (sites.geojson and sites.gpkg are written inside it)")
    parent = out_dir.parent if str(out_dir.parent) else Path(".")
    if not parent.is_dir():
        raise UserError("the output folder's parent does not exist", path=out_dir, fix=f"create {parent} first")
    out_dir.mkdir(exist_ok=True)
    if not os.access(out_dir, os.W_OK):
        raise UserError("the output folder is not writable", path=out_dir, fix="choose a writable location")
    return out_dir


def _write_run(out_dir: Path, summary: RunSummary, options: ScanOptions, run_id: str, created: str,
               model: Path | str, model_sha: str) -> Path:
    doc = {"run_id": run_id, "created": created, "finished": now_utc(), "seconds": round(summary.seconds, 3),
           "where": summary.where, "model": str(model), "model_sha256": model_sha,
           "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()},
           "n_sites": summary.n_sites,
           "scenes": [{k: v for k, v in asdict(o).items()} for o in summary.outcomes]}
    path = out_dir / "run.json"
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------------ Dask
def local_workers(requested: int | None) -> int:
    """Workers of the default LocalCluster: one per two cores (a scan runs the model on one core and reads on
    another: on 2 cores, 2 workers were x0.87 of 1, BENCHMARKS.md), no more than the memory holds
    (``WORKER_MEMORY_GB`` each)."""
    if requested:
        return requested
    cores = max(1, (os.cpu_count() or 1) // 2)
    try:
        import psutil

        by_memory = int(psutil.virtual_memory().total / 2**30 // WORKER_MEMORY_GB)
    except ImportError:
        by_memory = cores
    return max(1, min(cores, by_memory))


def _run_dask(todo: list[SceneInput], out_dir: Path, options: ScanOptions, fingerprints: dict[str, str],
              cluster: Cluster, run_id: str, finished: Callable[[SceneOutcome], None],
              on_start: Callable[[str], None] | None, total: int) -> str:
    import importlib.util

    from distributed import Client, LocalCluster, as_completed

    if not log.isEnabledFor(logging.DEBUG):
        for name in ("distributed", "tornado", "bokeh"):  # Dask's INFO lines would drown the scan's own
            logging.getLogger(name).setLevel(logging.WARNING)
    local = None
    try:
        if cluster.scheduler:
            try:
                client = Client(cluster.scheduler, timeout=f"{SCHEDULER_TIMEOUT_S}s")
            except OSError as exc:
                raise UserError(f"cannot reach the Dask scheduler ({first_line(exc)})", path=cluster.scheduler,
                                fix="start it with 'dask scheduler' and workers with 'dask worker ADDRESS', "
                                    "or drop --scheduler to run on this machine") from None
            n = len(client.scheduler_info(n_workers=-1).get("workers", {}))
            where = f"on {cluster.scheduler} ({n} worker(s) at the start)"
            dashboard = f"{client.dashboard_link} (when the scheduler serves one)"
        else:
            workers = local_workers(cluster.workers)
            env = {"MINEWATCH_THREADS": os.environ.get("MINEWATCH_THREADS", "1")}
            has_bokeh = importlib.util.find_spec("bokeh") is not None
            local = LocalCluster(n_workers=workers, threads_per_worker=cluster.threads_per_worker, processes=True,
                                 memory_limit=cluster.memory_limit, env=env,
                                 dashboard_address=":8787" if has_bokeh else None)
            client = Client(local)
            where = f"on a local cluster of {workers} worker process(es) x {cluster.threads_per_worker} thread(s)"
            dashboard = client.dashboard_link if has_bokeh else "none (pip install bokeh for the Dask dashboard)"
        if on_start:
            on_start(f"scanning {len(todo)} of {total} scene(s) {where}; dashboard: {dashboard}")
        futures = {}
        for s in todo:
            fut = client.submit(scan_scene, s, str(out_dir.resolve()), options, fingerprints[s.scene_id],
                                key=f"scan-{s.scene_id}-{run_id}", pure=False, priority=_size(s))
            futures[fut] = s
        for fut in as_completed(list(futures)):
            s = futures[fut]
            try:
                outcome = fut.result()
            except Exception as exc:  # noqa: BLE001 - the scheduler gave up on the task (worker deaths, ...)
                outcome = SceneOutcome(s.scene_id, "failed", origin=s.origin, reason=_task_failure(exc))
            finished(outcome)
        client.close()
        return where
    finally:
        if local is not None:
            local.close()


def _task_failure(exc: BaseException) -> str:
    name = type(exc).__name__
    if name == "KilledWorker":
        return ("the workers scanning it died every time (out of memory, or a crash reading it); "
                "scan it alone with 'minewatch scan' to see why")
    return f"task failed: {name}: {first_line(exc)}"


def _size(scene: SceneInput) -> int:
    """Larger scenes first, so the last scene to finish is a small one."""
    try:
        return int(Path(scene.optical).stat().st_size // 2**20) if scene.optical else 0
    except OSError:
        return 0


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


class ProgressReport:
    """Scenes done / total and tiles per second: a bar on a terminal, else one line per finished scene on stdout
    (for logs and CI)."""

    def __init__(self, total: int, *, quiet: bool = False) -> None:
        from minewatch.progress import progress_enabled

        self.total = total
        self.lines = not quiet and not stdout_is_terminal()
        self.bar = None
        if not self.lines and progress_enabled():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc="scenes", unit="scene", dynamic_ncols=True, leave=False)

    def __call__(self, done: int, total: int, outcome: SceneOutcome, tiles_per_s: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"{tiles_per_s:,.0f} tiles/s")
        if self.lines:
            width = len(str(total))
            head = f"[{done:>{width}}/{total}] {outcome.scene_id}  {outcome.status}"
            if outcome.status == "failed":
                print(f"{head}  {outcome.reason}", flush=True)
            else:
                print(f"{head}  {outcome.n_sites} site(s)  {outcome.n_tiles} tiles  {outcome.seconds:.1f} s  "
                      f"({tiles_per_s:,.0f} tiles/s so far)" + (f"  {outcome.model}" if outcome.model else ""),
                      flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
