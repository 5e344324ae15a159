"""The ``minewatch`` command line: thin wrappers that validate input and call the library.

Heavy imports happen inside each command so that ``minewatch scan --help`` is instant and the scan path
never imports torch.
"""

from __future__ import annotations

import functools
import logging
import sys
import traceback
from pathlib import Path

import click

from minewatch import __version__
from minewatch.errors import UserError, first_line
from minewatch.progress import setup_logging

log = logging.getLogger("minewatch")

# Input paths are not checked by click: the code that opens them says what is wrong in one line (file,
# problem, fix), the same way for every command and for files named inside configs.
INPUT_PATH = click.Path(dir_okay=False, path_type=Path)
OUT_FILE = click.Path(dir_okay=False, path_type=Path)
DEBUG_KEY = "minewatch.debug"


class MinewatchGroup(click.Group):
    """Maps exceptions to exit codes: 2 for bad input (one line), 1 for internal errors."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        """Click's own usage errors (a bad option value, a missing argument) as one line too."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as err:
            where = err.ctx.command_path if getattr(err, "ctx", None) is not None else (prog_name or "minewatch")
            click.echo(f"minewatch: error: {err.format_message().rstrip('.')}. Fix: see '{where} --help'.", err=True)
            sys.exit(err.exit_code)
        except click.exceptions.Abort:
            click.echo("minewatch: aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except UserError as err:
            if ctx.meta.get(DEBUG_KEY):
                traceback.print_exc()
            click.echo(f"minewatch: error: {err.one_line()}", err=True)
            sys.exit(2)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            click.echo("minewatch: interrupted", err=True)
            sys.exit(130)
        except Exception as exc:  # noqa: BLE001 - the one place internal errors are reported
            if ctx.meta.get(DEBUG_KEY):
                traceback.print_exc()
            else:
                click.echo(
                    f"minewatch: internal error: {type(exc).__name__}: {first_line(exc)} (a bug: please report it "
                    f"with the output of --debug and 'minewatch info')", err=True,
                )
            sys.exit(1)


def common_options(func):
    """-v/-q/--debug on every command (so they may follow the subcommand name); logging is set up and
    --debug recorded in the click context (for the error handler) before the command runs."""

    @click.option("-v", "--verbose", count=True, help="More logging (repeatable).")
    @click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors; no progress bars.")
    @click.option("--debug", is_flag=True, help="Show tracebacks and debug logging.")
    @functools.wraps(func)
    def wrapper(*args, verbose: int, quiet: bool, debug: bool, **kwargs):
        click.get_current_context().meta[DEBUG_KEY] = debug
        setup_logging(verbose + (1 if debug else 0), quiet=quiet)
        return func(*args, **kwargs)

    return wrapper


def scene_flags(func):
    """The options of one scene's inputs besides the raster, declared once for every command that reads a scene."""
    func = click.option("--profile", default=None,
                        help="Sensor profile of the raster (drone, satellite): without --model it picks the committed "
                             "model; default: guessed from the raster's bands, storage type and pixel size.")(func)
    func = click.option("--exclude", type=INPUT_PATH, default=None,
                        help="Skip these polygons (known legal sites, e.g. registered data centres).")(func)
    func = click.option("--geofence", type=INPUT_PATH, default=None,
                        help="Only inside these polygons (GeoJSON, GPKG, SHP; any CRS).")(func)
    return click.option("--thermal", type=INPUT_PATH, default=None,
                        help="Thermal raster of the same scene (any grid and CRS).")(func)


def scene_options(func):
    """The inputs of one scene: the raster and `scene_flags`."""
    return click.argument("raster", type=INPUT_PATH)(scene_flags(func))


@click.group(cls=MinewatchGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="minewatch")
def cli() -> None:
    """Find crypto-currency mining sites in satellite, drone and thermal imagery.

    \b
    Typical journey:
      minewatch synth --out scenes --count 3           # generated scenes with ground truth
      minewatch tiles scenes/scene_000000/optical.tif -o tiles.gpkg
      minewatch scan scenes/scene_000000/optical.tif --thermal scenes/scene_000000/thermal.tif -o sites.geojson
      minewatch evaluate sites.geojson --truth scenes/scene_000000/truth.geojson
      minewatch demo                                    # all of the above on an embedded default
    """


# ---------------------------------------------------------------- synth
@cli.command()
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder to write scene folders into (created).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the first scene; scene k uses seed+k.")
@click.option("--count", type=click.IntRange(1), default=1, show_default=True, help="Number of scenes.")
@click.option("--profile", default=None, help="Sensor profile name (drone, satellite) or YAML; default: the recipe's.")
@click.option("--config", "config", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Synthetic-scene recipe YAML (default: configs/synth/default.yaml).")
@click.option("--background", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="One real optical raster to paste the sites on (the one-file form of --backgrounds).")
@click.option("--backgrounds", "backgrounds", type=click.Path(path_type=Path), multiple=True,
              help="Real orthophotos to paste sites and look-alikes on: GeoTIFF (any CRS), PNG or JPEG files or "
                   "folders of them; several may follow (--backgrounds a.tif b.png dir/). Each scene picks one by "
                   "its seed. Default: the recipe's 'backgrounds'.")
@click.option("--background-gsd", "background_gsd", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="METRES", help="Pixel size of PNG/JPEG backgrounds without georeferencing.")
@click.option("--size", type=click.IntRange(64), default=None, help="Optical raster size in pixels (square).")
@click.option("--preview", is_flag=True, help="Also write preview.png: optical, thermal and truth side by side.")
@click.option("--overwrite", is_flag=True, help="Replace scene folders that exist (their truth too).")
@click.argument("more_backgrounds", nargs=-1, type=click.Path(path_type=Path), metavar="[PATH]...")
@common_options
def synth(out, seed, count, profile, config, background, backgrounds, background_gsd, size, preview,
          overwrite, more_backgrounds) -> None:
    """Generate georeferenced optical + thermal scenes of mining sites and look-alikes, with ground truth.

    Each scene folder holds optical.tif, thermal.tif, truth.geojson and scene.json. PATHs after
    --backgrounds are more backgrounds (so a shell glob works: --backgrounds tiles/*.png).

    \b
    Example:
      minewatch synth --out scenes --seed 7 --count 4 --profile drone --preview
      minewatch synth --out real --count 20 --backgrounds orthos/ tiles/*.png --background-gsd 0.3
    """
    from minewatch.datasets.synth import generate_scenes

    if more_backgrounds and not backgrounds:
        raise UserError(f"'{more_backgrounds[0]}' given without --backgrounds",
                        fix="put background paths after --backgrounds")
    paths = [*backgrounds, *more_backgrounds]
    if background is not None and paths:
        raise UserError("both --background and --backgrounds given", fix="list every background after --backgrounds")
    folders = generate_scenes(out, seed=seed, count=count, profile=profile, recipe=config, background=background,
                              size=size, preview=preview, backgrounds=paths or None, background_gsd_m=background_gsd,
                              overwrite=overwrite)
    for folder in folders:
        click.echo(str(folder))


# ---------------------------------------------------------------- tiles
@cli.command()
@scene_options
@click.option("--model", type=INPUT_PATH, default=None,
              help="Take grid, window size and stride from this model (default: the committed model, as scan).")
@click.option("--tile-m", type=float, default=None, help="Window size in metres (default: the model's).")
@click.option("--stride-m", type=float, default=None,
              help="Stride in metres (default: the model's; the window size with --tile-m).")
@click.option("--gsd", type=float, default=None, help="Target grid in metres per pixel (default: the profile's).")
@click.option("--max-nodata", type=click.FloatRange(0, 1), default=None, help="Skip windows with more nodata.")
@click.option("-o", "--out", type=OUT_FILE, required=True, help="Output GeoPackage of kept windows.")
@click.option("--overwrite", is_flag=True, help="Replace the output if it exists.")
@common_options
def tiles(raster, thermal, geofence, exclude, model, profile, tile_m, stride_m, gsd, max_nodata, out,
          overwrite) -> None:
    """Write the windows a scan would read as polygons, so a GIS user can see what will be scanned.

    \b
    Example:
      minewatch tiles optical.tif --geofence province.geojson --exclude datacentres.gpkg -o tiles.gpkg
    """
    from minewatch.infer.tiles_preview import write_tiles

    n = write_tiles(raster, out, thermal=thermal, geofence=geofence, exclude=exclude, model=model,
                    profile=profile, tile_m=tile_m, stride_m=stride_m, gsd_m=gsd, max_nodata=max_nodata,
                    overwrite=overwrite)
    log.info("wrote %d windows to %s", n, out)


# ---------------------------------------------------------------- train
@cli.command()
@click.option("--config", "config", default="smoke", show_default=True,
              help="Training preset name in configs/train/ or a YAML file.")
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run folder (default: runs/<config name>).")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in the run folder.")
@click.option("--weights", type=INPUT_PATH, default=None, help="Local RGB backbone weights to start from.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True)
@common_options
def train(config, out, resume, weights, device) -> None:
    """Train a tile classifier from scene folders (generated or your own labelled imagery).

    \b
    Example:
      minewatch train --config configs/train/default.yaml --out runs/default
      minewatch train --config smoke --out runs/smoke --resume
    """
    _require_torch("train")
    from minewatch.train.loop import train_from_config

    ckpt = train_from_config(config, out=out, resume=resume, weights=weights, device=device)
    click.echo(str(ckpt))


# ---------------------------------------------------------------- export
@cli.command()
@click.argument("checkpoint", type=INPUT_PATH)
@click.option("-o", "--out", type=OUT_FILE, required=True, help="Output .onnx file.")
@click.option("--int8", is_flag=True, help="Also quantise statically to int8 (QDQ), calibrated on tiles.")
@click.option("--calibration", type=click.Path(path_type=Path), default=None,
              help="Folder of scene folders for int8 calibration (default: generated scenes).")
@click.option("--weights-out", type=OUT_FILE, default=None,
              help="Also write the weights alone (.pt, a few MB): what a fine-tune starts from (model.init).")
@common_options
def export(checkpoint, out, int8, calibration, weights_out) -> None:
    """Export a checkpoint to one self-describing ONNX file for CPU inference (checks parity first).

    \b
    Example:
      minewatch export runs/default/best.pt -o model.onnx
      minewatch export runs/default/best.pt -o model-int8.onnx --int8 --calibration scenes/
    """
    _require_torch("export")
    from minewatch.train.export import export_onnx

    path = export_onnx(checkpoint, out, int8=int8, calibration=calibration)
    click.echo(str(path))
    if weights_out is not None:
        from minewatch.train.checkpoint import save_weights

        click.echo(str(save_weights(checkpoint, weights_out)))


# ---------------------------------------------------------------- scan
@cli.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@scene_flags
@click.option("--model", type=INPUT_PATH, default=None,
              help="model.onnx (CPU, no torch) or a training checkpoint (.pt); default: the committed model of the "
                   "raster's sensor profile (drone or satellite, from its bands, storage type and pixel size; "
                   "--profile to choose).")
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True,
              help="Candidate sites, GeoJSON (RFC 7946); for several scenes, a folder.")
@click.option("--tiles-out", type=OUT_FILE, default=None, help="Tile scores as GeoPackage (scene CRS).")
@click.option("--heatmap", type=OUT_FILE, default=None, help="Per-class score heatmap, Cloud Optimized GeoTIFF.")
@click.option("--quicklook", type=OUT_FILE, default=None, help="PNG map: scene, site outlines, ranks, legend.")
@click.option("--thermal-units", default=None,
              help="Units of a radiometric thermal raster when its metadata does not say: K, kelvin, degC, "
                   "celsius, degF or fahrenheit.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--batch", type=click.IntRange(1), default=32, show_default=True, help="Tiles per model call.")
@click.option("--stride-m", type=float, default=None, help="Override the model's stride in metres.")
@click.option("--min-windows", type=click.IntRange(1), default=None,
              help="Positive windows a site needs (default: 2 where windows overlap by half or more, as at the "
                   "model's stride, else 1); a site at the raster's edge needs one. 1 keeps lone windows.")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted scan from its journal; several scenes: skip the complete ones.")
@click.option("--overwrite", is_flag=True, help="Replace outputs that exist (never done without it).")
@click.option("--dry-run", is_flag=True, help="Check everything and print what the scan would do; read nothing.")
@click.option("--allow-coarse", is_flag=True,
              help="Scan imagery coarser than twice the model's grid anyway (expect misses).")
@click.option("--max-tiles", type=int, default=None,
              help="Refuse a scan planning more windows than this (default 250,000: a 20k px mosaic passes).")
@click.option("--nodata", type=float, default=None, help="Optical value that marks missing pixels.")
@click.option("--scale", type=float, default=None,
              help="Factor from optical values to reflectance (e.g. 0.0001), when the guess is wrong.")
@click.option("--bands", default=None, help="Optical band names in file order, e.g. red,green,blue,nir.")
@click.option("--thermal-only", is_flag=True,
              help="Heat anomalies of a thermal raster alone (Landsat 8/9 B10 + MTL, ST_B10, or kelvin) at the 100 m "
                   "scale, as heat_signature candidates marked thermal-only (no model; a single thermal band given "
                   "as INPUT is scanned so without the flag).")
@click.option("--catalog", default=None, metavar="CAT",
              help="Then add the sites to this catalogue (*.gpkg or postgresql:// URL; see 'minewatch catalog').")
@click.option("--allow-remote", is_flag=True, help="Allow reads over HTTP(S) (STAC hrefs, VRT sources, URLs).")
@click.option("--thermal-asset", default=None, help="Several scenes: the STAC asset key of the thermal band.")
@click.option("--workers", type=click.IntRange(1), default=None,
              help="Several scenes: local Dask worker processes (default: one per two cores).")
@click.option("--threads-per-worker", type=click.IntRange(1), default=1, show_default=True,
              help="Several scenes: scenes each local worker scans at once.")
@click.option("--memory-limit", default="auto", show_default=True,
              help="Several scenes: memory limit per local worker (e.g. 4GB; auto = the machine's / workers).")
@click.option("--scheduler", envvar="DASK_SCHEDULER_ADDRESS", default=None, metavar="ADDRESS",
              help="Several scenes: run on this Dask scheduler (tcp://HOST:8786; also $DASK_SCHEDULER_ADDRESS).")
@click.option("--no-cluster", is_flag=True, help="Several scenes: scan them one after another in this process.")
@click.option("--scene-outputs", default=None, metavar="LIST",
              help="Several scenes: what each scene writes, of sites,tiles,heatmap,quicklook (default: all).")
@click.option("--merge-gap-m", type=click.FloatRange(0), default=None,
              help="Several scenes: sites of different scenes this close (metres) are one site (default 1).")
@common_options
def scan(inputs, thermal, geofence, exclude, model, out, tiles_out, heatmap, quicklook, profile, thermal_units,
         device, batch, stride_m, min_windows, resume, overwrite, dry_run, allow_coarse, max_tiles, nodata, scale,
         bands, thermal_only, catalog, allow_remote, thermal_asset, workers, threads_per_worker, memory_limit,
         scheduler, no_cluster, scene_outputs, merge_gap_m) -> None:
    """Scan scenes of any size and write ranked candidate sites as GeoJSON that opens in QGIS.

    INPUT is one raster (sites go to the -o file), or several scenes: rasters, folders (scene folders with
    optical.tif [+ thermal.tif], Landsat 8/9 or Sentinel-2 band folders, loose GeoTIFFs; recursive), globs, a
    text/CSV list of optical[,thermal] lines, or STAC Item/ItemCollection/Catalog JSON. Several scenes run as
    Dask tasks, one per scene, and -o names a folder: DIR/<scene_id>/ gets each scene's sites, tiles, heatmap and
    quicklook; DIR/sites.geojson and DIR/sites.gpkg hold the sites of all scenes merged and ranked together.

    Everything is checked before the first window is read (pixel size against the model's, window count
    and memory, bands, value scale, nodata, thermal units, the model's graph, every output against every
    input); --dry-run prints that check and stops. Outputs are never replaced without --overwrite, and
    are written together at the end, each with a QGIS style beside it.

    \b
    Example:
      minewatch scan optical.tif --thermal thermal.tif --geofence area.geojson \\
          -o sites.geojson --tiles-out tiles.gpkg --heatmap heat.tif --quicklook map.png
      minewatch scan mosaic.tif --dry-run -o sites.geojson     # what would be read, and any problem
      minewatch scan flights/ -o province --workers 2
      minewatch scan LC09_..._B10.TIF -o heat.geojson --thermal-only   # Landsat thermal alone (MTL beside it)
      minewatch scan items.json --thermal-asset lwir11 -o province --scheduler tcp://10.0.0.5:8786
    """
    from minewatch.datasets.vrt import remote_reads, remote_reads_allowed
    from minewatch.infer.scan import ScanRequest, run_scan

    allowed = allow_remote or remote_reads_allowed()
    band_names = tuple(b.strip() for b in bands.split(",")) if bands else None
    if not _one_raster(inputs):
        _scan_many(inputs, out, thermal=thermal, tiles_out=tiles_out, heatmap=heatmap, quicklook=quicklook,
                   dry_run=dry_run, catalog=catalog, thermal_asset=thermal_asset, scene_outputs=scene_outputs,
                   scheduler=scheduler, workers=workers, threads_per_worker=threads_per_worker,
                   memory_limit=memory_limit, no_cluster=no_cluster, merge_gap_m=merge_gap_m,
                   scan_options=dict(model=model, geofence=geofence, exclude=exclude, profile=profile,
                                     thermal_units=thermal_units, device=device, batch=batch, stride_m=stride_m,
                                     min_windows=min_windows, resume=resume, overwrite=overwrite,
                                     allow_remote=allowed, allow_coarse=allow_coarse, max_tiles=max_tiles,
                                     nodata=nodata, scale=scale, bands=band_names, thermal_only=thermal_only))
        return
    raster = Path(inputs[0])
    ctx = click.get_current_context()
    out = OUT_FILE.convert(out, next(q for q in ctx.command.params if q.name == "out"), ctx)  # as before: a file
    if catalog is not None:  # a bad location or an unreachable server fails before the scan, not after
        from minewatch.datasets.thermal import is_thermal_raster
        from minewatch.infer.catalog.store import opened

        if thermal_only or (thermal is None and is_thermal_raster(raster, thermal_units)):
            raise UserError("a thermal-only scan does not go into a catalogue: its candidates are places to look at, "
                            "not sightings, and it reads no windows to record as coverage", path=raster,
                            fix="drop --catalog; scan the 0.5 m imagery of the candidates into the catalogue")

        with opened(catalog, create=True):
            pass
    request = ScanRequest(raster=raster, thermal=thermal, geofence=geofence, exclude=exclude, model=model,
                          out=out, tiles_out=tiles_out, heatmap=heatmap, quicklook=quicklook, profile=profile,
                          thermal_units=thermal_units, device=device, batch=batch, stride_m=stride_m,
                          min_windows=min_windows, resume=resume, overwrite=overwrite, dry_run=dry_run,
                          allow_coarse=allow_coarse, nodata=nodata, scale=scale, thermal_only=thermal_only,
                          bands=band_names, **({"max_tiles": max_tiles} if max_tiles is not None else {}))
    with remote_reads(allowed):
        result = run_scan(request)
    click.echo(result.summary())
    if catalog is not None and not dry_run:
        from minewatch.infer.catalog.ingest import batch_from_scan
        from minewatch.infer.catalog.store import opened
        from minewatch.infer.catalog.update import add_batch

        with opened(catalog) as store:
            click.echo(f"catalogue {store.location}: {add_batch(store, batch_from_scan(result)).line()}")


def _one_raster(inputs: tuple[str, ...]) -> bool:
    """The one-raster form, exactly as before multi-scene scans: one input that is not a folder, glob, list,
    STAC document or URL."""
    import glob

    if len(inputs) != 1:
        return False
    raw = inputs[0]
    p = Path(raw)
    if raw.startswith(("http://", "https://", "/vsi")) or p.is_dir():
        return False
    if not p.exists() and glob.has_magic(raw):
        return False
    return p.suffix.lower() not in (".txt", ".csv", ".lst", ".json")


def _scan_many(inputs, out: Path, *, thermal, tiles_out, heatmap, quicklook, dry_run, catalog, thermal_asset,
               scene_outputs, scheduler, workers, threads_per_worker, memory_limit, no_cluster, merge_gap_m,
               scan_options: dict) -> None:
    """Several scenes: one Dask task each, then their sites merged (infer/many.py)."""
    for flag, value in (("--thermal", thermal), ("--tiles-out", tiles_out), ("--heatmap", heatmap),
                        ("--quicklook", quicklook), ("--dry-run", dry_run or None), ("--catalog", catalog)):
        if value is not None:
            fix = {"--thermal": "give scene folders holding thermal.tif, or a list of optical,thermal lines",
                   "--dry-run": "dry-run one scene at a time ('minewatch scan RASTER --dry-run -o x.geojson')",
                   "--catalog": "add the scenes afterwards: minewatch catalog add CAT DIR/*/"
                   }.get(flag, "drop it: every scene's tiles, heatmap and quicklook are written under DIR/<scene_id>/")
            raise UserError(f"{flag} applies to a one-raster scan, not to {len(inputs)} input(s)",
                            path=value if isinstance(value, (str, Path)) else None, fix=fix)
    from minewatch.infer.inputs import discover
    from minewatch.infer.many import DEFAULT_GAP_M, Cluster, ProgressReport, ScanOptions, parse_outputs, run_many

    outputs = parse_outputs(scene_outputs)
    scenes = discover(list(inputs), thermal_asset=thermal_asset)
    options = ScanOptions(**scan_options, outputs=outputs)
    cluster = Cluster(scheduler=scheduler, workers=workers, threads_per_worker=threads_per_worker,
                      memory_limit=memory_limit, in_process=no_cluster)
    quiet = logging.getLogger().level > logging.INFO
    report = ProgressReport(len(scenes), quiet=quiet)
    try:
        summary = run_many(scenes, out, options, cluster,
                           gap_m=DEFAULT_GAP_M if merge_gap_m is None else merge_gap_m,
                           on_scene=report, on_start=log.info)
    finally:
        report.close()
    click.echo(summary.table())
    if summary.exit_code:
        sys.exit(summary.exit_code)


# ---------------------------------------------------------------- evaluate
@cli.command()
@click.argument("sites", type=INPUT_PATH)
@click.option("--truth", type=INPUT_PATH, required=True, help="Ground-truth GeoJSON (e.g. truth.geojson).")
@click.option("--geofence", type=INPUT_PATH, default=None, help="Count only truth inside these polygons.")
@click.option("--tiles", "tiles_path", type=INPUT_PATH, default=None,
              help="Tile scores GeoPackage from scan --tiles-out, for tile-level AP.")
@click.option("-o", "--out", type=OUT_FILE, default=None, help="Evaluation JSON (default: beside SITES).")
@click.option("--plot", type=OUT_FILE, default=None, help="Precision-recall plot PNG (default: beside SITES).")
@common_options
def evaluate(sites, truth, geofence, tiles_path, out, plot) -> None:
    """Site-level precision, recall and F1 (overall and per class), top-k precision, tile AP.

    \b
    Example:
      minewatch evaluate sites.geojson --truth truth.geojson --tiles tiles.gpkg
    """
    from minewatch.infer.evaluate import evaluate_files

    report = evaluate_files(sites, truth, geofence=geofence, tiles=tiles_path, out=out, plot=plot)
    click.echo(report.table())


# ---------------------------------------------------------------- demo
@cli.command()
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), default=Path("demo-out"),
              show_default=True, help="Folder for the demo scene and results.")
@click.option("--seed", type=int, default=2026, show_default=True, help="Seed of the demo scene.")
@common_options
def demo(out, seed) -> None:
    """Generate a sample scene, scan it with the committed model, evaluate against its truth.

    \b
    Example:
      minewatch demo --out demo-out
    """
    from minewatch.infer.demo import run_demo

    click.echo(run_demo(out, seed=seed))


# ---------------------------------------------------------------- card
@cli.command()
@click.argument("run", type=click.Path(file_okay=False, path_type=Path))
@click.argument("model", type=INPUT_PATH)
@click.option("--seed", type=int, default=None,
              help="First seed of the held-out generated scenes (default: the profile's, drone 7000, satellite 17000).")
@click.option("--count", type=click.IntRange(1), default=None, help="Number of held-out scenes (default: 40).")
@click.option("--previous", type=INPUT_PATH, default=None,
              help="The model this one replaces: scored on the same held-out data, side by side.")
@common_options
def card(run, model, seed, count, previous) -> None:
    """Write the model card beside MODEL (MODEL_CARD.md for a drone model, MODEL_CARD-<profile>.md for the others):
    config, data, held-out figures per class and scene (a satellite model: heat by farm size too).

    Held-out scenes use seeds that neither training nor validation saw, so their figures are the honest
    ones; they are generated under RUN on first use.

    \b
    Example:
      minewatch card runs/default models/minewatch-drone.onnx
      minewatch card runs/satellite models/minewatch-satellite.onnx
    """
    _require_torch("card")
    from minewatch.train.model_card import write_card

    click.echo(str(write_card(run, model, seed=seed, count=count, previous=previous)))


# ---------------------------------------------------------------- info
@cli.command()
@click.argument("model", type=INPUT_PATH, required=False)
@common_options
def info(model) -> None:
    """Versions of minewatch and its libraries, and what a model expects (default: the committed model).

    \b
    Example:
      minewatch info
      minewatch info runs/default/model.onnx
    """
    from minewatch.info import describe

    click.echo(describe(model))


def _require_torch(command: str) -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise UserError(
            f"'minewatch {command}' needs PyTorch, which this install lacks",
            fix="pip install 'minewatch[train]'",
        ) from None


from minewatch.cli_catalog import catalog  # noqa: E402 - it uses the option helpers above

cli.add_command(catalog)


def main() -> None:
    cli(prog_name="minewatch")
