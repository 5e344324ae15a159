"""The ``minewatch`` command line: thin wrappers that validate input and call the library.

Heavy imports happen inside each command so that ``minewatch scan --help`` is instant and the scan path
never imports torch.
"""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path

import click

from minewatch import __version__
from minewatch.errors import UserError
from minewatch.progress import setup_logging

log = logging.getLogger("minewatch")

EXISTING_FILE = click.Path(exists=False, dir_okay=False, path_type=Path)
OUT_FILE = click.Path(dir_okay=False, path_type=Path)


class MinewatchGroup(click.Group):
    """Maps exceptions to exit codes: 2 for bad input (one line), 1 for internal errors."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        debug = "--debug" in sys.argv
        try:
            return super().invoke(ctx)
        except UserError as err:
            if debug:
                traceback.print_exc()
            click.echo(f"minewatch: error: {err.one_line()}", err=True)
            sys.exit(2)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            click.echo("minewatch: interrupted", err=True)
            sys.exit(130)
        except Exception as exc:  # noqa: BLE001 - the one place internal errors are reported
            if debug:
                traceback.print_exc()
            else:
                click.echo(
                    f"minewatch: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
                    err=True,
                )
            sys.exit(1)


def common_options(func):
    """--verbose/--quiet/--debug on every command, so they may follow the subcommand name."""
    func = click.option("--debug", is_flag=True, help="Show tracebacks and debug logging.")(func)
    func = click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors; no progress bars.")(func)
    func = click.option("-v", "--verbose", count=True, help="More logging (repeatable).")(func)
    return func


def _setup(verbose: int, quiet: bool, debug: bool) -> None:
    setup_logging(verbose + (1 if debug else 0), quiet=quiet)


@click.group(cls=MinewatchGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="minewatch")
def cli() -> None:
    """Find crypto-currency mining sites in satellite, drone and thermal imagery.

    \b
    Typical journey:
      minewatch synth --out scenes --count 3           # generated scenes with ground truth
      minewatch tiles scenes/scene_000/optical.tif -o tiles.gpkg
      minewatch scan scenes/scene_000/optical.tif --thermal scenes/scene_000/thermal.tif -o sites.geojson
      minewatch evaluate sites.geojson --truth scenes/scene_000/truth.geojson
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
@click.argument("more_backgrounds", nargs=-1, type=click.Path(path_type=Path), metavar="[PATH]...")
@common_options
def synth(out, seed, count, profile, config, background, backgrounds, background_gsd, size, preview,
          more_backgrounds, verbose, quiet, debug) -> None:
    """Generate georeferenced optical + thermal scenes of mining sites and look-alikes, with ground truth.

    Each scene folder holds optical.tif, thermal.tif, truth.geojson and scene.json. PATHs after
    --backgrounds are more backgrounds (so a shell glob works: --backgrounds tiles/*.png).

    \b
    Example:
      minewatch synth --out scenes --seed 7 --count 4 --profile drone --preview
      minewatch synth --out real --count 20 --backgrounds orthos/ tiles/*.png --background-gsd 0.3
    """
    _setup(verbose, quiet, debug)
    from minewatch.datasets.synth import generate_scenes

    if more_backgrounds and not backgrounds:
        raise UserError(f"'{more_backgrounds[0]}' given without --backgrounds",
                        fix="put background paths after --backgrounds")
    paths = [*backgrounds, *more_backgrounds]
    if background is not None and paths:
        raise UserError("both --background and --backgrounds given", fix="list every background after --backgrounds")
    folders = generate_scenes(out, seed=seed, count=count, profile=profile, recipe=config, background=background,
                              size=size, preview=preview, backgrounds=paths or None, background_gsd_m=background_gsd)
    for folder in folders:
        click.echo(str(folder))


# ---------------------------------------------------------------- tiles
@cli.command()
@click.argument("raster", type=EXISTING_FILE)
@click.option("--thermal", type=EXISTING_FILE, default=None, help="Thermal raster of the same scene (any grid).")
@click.option("--geofence", type=EXISTING_FILE, default=None, help="Include polygons (GeoJSON, GPKG, SHP; any CRS).")
@click.option("--exclude", type=EXISTING_FILE, default=None, help="Exclude polygons, e.g. registered data centres.")
@click.option("--model", type=EXISTING_FILE, default=None, help="Take GSD and tile size from this model.")
@click.option("--profile", default=None, help="Sensor profile of the raster (default: the model's, else drone).")
@click.option("--tile-m", type=float, default=None, help="Tile size in metres (default: the model's, else 64).")
@click.option("--stride-m", type=float, default=None, help="Stride in metres (default: the tile size).")
@click.option("--gsd", type=float, default=None, help="Target grid in metres per pixel (default: the profile's).")
@click.option("--max-nodata", type=click.FloatRange(0, 1), default=None, help="Skip windows with more nodata.")
@click.option("-o", "--out", type=OUT_FILE, required=True, help="Output GeoPackage of kept windows.")
@common_options
def tiles(raster, thermal, geofence, exclude, model, profile, tile_m, stride_m, gsd, max_nodata, out,
          verbose, quiet, debug) -> None:
    """Write the windows a scan would read as polygons, so a GIS user can see what will be scanned.

    \b
    Example:
      minewatch tiles optical.tif --geofence province.geojson --exclude datacentres.gpkg -o tiles.gpkg
    """
    _setup(verbose, quiet, debug)
    from minewatch.datasets.tiles_job import write_tiles

    n = write_tiles(raster, out, thermal=thermal, geofence=geofence, exclude=exclude, model=model,
                    profile=profile, tile_m=tile_m, stride_m=stride_m, gsd_m=gsd, max_nodata=max_nodata)
    log.info("wrote %d windows to %s", n, out)


# ---------------------------------------------------------------- train
@cli.command()
@click.option("--config", "config", default="smoke", show_default=True,
              help="Training preset name in configs/train/ or a YAML file.")
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run folder (default: runs/<config name>).")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in the run folder.")
@click.option("--weights", type=EXISTING_FILE, default=None, help="Local RGB backbone weights to start from.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True)
@common_options
def train(config, out, resume, weights, device, verbose, quiet, debug) -> None:
    """Train a tile classifier from scene folders (generated or your own labelled imagery).

    \b
    Example:
      minewatch train --config configs/train/default.yaml --out runs/default
      minewatch train --config smoke --out runs/smoke --resume
    """
    _setup(verbose, quiet, debug)
    _require_torch("train")
    from minewatch.train.loop import train_from_config

    ckpt = train_from_config(config, out=out, resume=resume, weights=weights, device=device)
    click.echo(str(ckpt))


# ---------------------------------------------------------------- export
@cli.command()
@click.argument("checkpoint", type=EXISTING_FILE)
@click.option("-o", "--out", type=OUT_FILE, required=True, help="Output .onnx file.")
@click.option("--int8", is_flag=True, help="Also quantise statically to int8 (QDQ), calibrated on tiles.")
@click.option("--calibration", type=click.Path(path_type=Path), default=None,
              help="Folder of scene folders for int8 calibration (default: generated scenes).")
@common_options
def export(checkpoint, out, int8, calibration, verbose, quiet, debug) -> None:
    """Export a checkpoint to one self-describing ONNX file for CPU inference (checks parity first).

    \b
    Example:
      minewatch export runs/default/best.pt -o model.onnx
      minewatch export runs/default/best.pt -o model-int8.onnx --int8 --calibration scenes/
    """
    _setup(verbose, quiet, debug)
    _require_torch("export")
    from minewatch.train.export import export_onnx

    path = export_onnx(checkpoint, out, int8=int8, calibration=calibration)
    click.echo(str(path))


# ---------------------------------------------------------------- scan
@cli.command()
@click.argument("raster", type=EXISTING_FILE)
@click.option("--thermal", type=EXISTING_FILE, default=None, help="Thermal raster of the same scene (any grid).")
@click.option("--geofence", type=EXISTING_FILE, default=None, help="Scan only inside these polygons.")
@click.option("--exclude", type=EXISTING_FILE, default=None, help="Skip these polygons (known legal sites).")
@click.option("--model", type=EXISTING_FILE, default=None,
              help="model.onnx (CPU, no torch) or a training checkpoint (.pt); default: the committed model.")
@click.option("-o", "--out", type=OUT_FILE, required=True, help="Candidate sites, GeoJSON (RFC 7946).")
@click.option("--tiles-out", type=OUT_FILE, default=None, help="Tile scores as GeoPackage (scene CRS).")
@click.option("--heatmap", type=OUT_FILE, default=None, help="Per-class score heatmap, Cloud Optimized GeoTIFF.")
@click.option("--quicklook", type=OUT_FILE, default=None, help="PNG map: scene, site outlines, ranks, legend.")
@click.option("--profile", default=None, help="Sensor profile of the raster (default: the model's).")
@click.option("--thermal-units", type=click.Choice(["kelvin", "celsius"]), default=None,
              help="Units of a radiometric thermal GeoTIFF when its metadata does not say.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--batch", type=click.IntRange(1), default=32, show_default=True, help="Tiles per model call.")
@click.option("--stride-m", type=float, default=None, help="Override the model's stride in metres.")
@click.option("--resume", is_flag=True, help="Continue an interrupted scan from its journal.")
@common_options
def scan(raster, thermal, geofence, exclude, model, out, tiles_out, heatmap, quicklook, profile, thermal_units,
         device, batch, stride_m, resume, verbose, quiet, debug) -> None:
    """Scan a scene of any size and write ranked candidate sites as GeoJSON that opens in QGIS.

    \b
    Example:
      minewatch scan optical.tif --thermal thermal.tif --geofence area.geojson \\
          --model models/minewatch-drone.onnx -o sites.geojson --quicklook map.png
    """
    _setup(verbose, quiet, debug)
    from minewatch.infer.scan import ScanRequest, run_scan

    request = ScanRequest(raster=raster, thermal=thermal, geofence=geofence, exclude=exclude, model=model,
                          out=out, tiles_out=tiles_out, heatmap=heatmap, quicklook=quicklook, profile=profile,
                          thermal_units=thermal_units, device=device, batch=batch, stride_m=stride_m,
                          resume=resume)
    result = run_scan(request)
    click.echo(result.summary())


# ---------------------------------------------------------------- evaluate
@cli.command()
@click.argument("sites", type=EXISTING_FILE)
@click.option("--truth", type=EXISTING_FILE, required=True, help="Ground-truth GeoJSON (e.g. truth.geojson).")
@click.option("--geofence", type=EXISTING_FILE, default=None, help="Count only truth inside these polygons.")
@click.option("--tiles", "tiles_path", type=EXISTING_FILE, default=None,
              help="Tile scores GeoPackage from scan --tiles-out, for tile-level AP.")
@click.option("-o", "--out", type=OUT_FILE, default=None, help="Evaluation JSON (default: beside SITES).")
@click.option("--plot", type=OUT_FILE, default=None, help="Precision-recall plot PNG (default: beside SITES).")
@common_options
def evaluate(sites, truth, geofence, tiles_path, out, plot, verbose, quiet, debug) -> None:
    """Site-level precision, recall and F1 (overall and per class), top-k precision, tile AP.

    \b
    Example:
      minewatch evaluate sites.geojson --truth truth.geojson --tiles tiles.gpkg
    """
    _setup(verbose, quiet, debug)
    from minewatch.infer.evaluate import evaluate_files

    report = evaluate_files(sites, truth, geofence=geofence, tiles=tiles_path, out=out, plot=plot)
    click.echo(report.table())


# ---------------------------------------------------------------- demo
@cli.command()
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), default=Path("demo-out"),
              show_default=True, help="Folder for the demo scene and results.")
@click.option("--seed", type=int, default=2026, show_default=True, help="Seed of the demo scene.")
@common_options
def demo(out, seed, verbose, quiet, debug) -> None:
    """Generate a sample scene, scan it with the committed model, evaluate against its truth.

    \b
    Example:
      minewatch demo --out demo-out
    """
    _setup(verbose, quiet, debug)
    from minewatch.infer.demo import run_demo

    click.echo(run_demo(out, seed=seed))


# ---------------------------------------------------------------- info
@cli.command()
@click.argument("model", type=EXISTING_FILE, required=False)
@common_options
def info(model, verbose, quiet, debug) -> None:
    """Versions of minewatch and its libraries; with MODEL, the model's metadata.

    \b
    Example:
      minewatch info models/minewatch-drone.onnx
    """
    _setup(verbose, quiet, debug)
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


def main() -> None:
    cli(prog_name="minewatch")
