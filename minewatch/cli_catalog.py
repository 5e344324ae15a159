"""``minewatch catalog ...``: the site catalogue over time (add, list, export, diff, report, labels).

Registered on the main group in :mod:`minewatch.cli`; heavy imports happen inside each command.
"""

from __future__ import annotations

import functools
from pathlib import Path

import click

from minewatch.cli import INPUT_PATH, OUT_FILE, common_options

CATALOG_HELP = "Catalogue: a *.gpkg file or a postgresql://user@host/db URL."
STATUS_CHOICES = ("new", "persisting", "gone", "returned")
REVIEW_CHOICES = ("unreviewed", "confirmed", "rejected", "unsure")


def _catalog_argument(func):
    return click.argument("catalog", metavar="CAT")(func)


def filter_options(func):
    """--status, --review, --since, --geofence: declared once for every command that selects sites."""
    @click.option("--status", "status", multiple=True, type=click.Choice(STATUS_CHOICES),
                  help="Only sites with this status (repeatable).")
    @click.option("--review", "review", multiple=True, type=click.Choice(REVIEW_CHOICES),
                  help="Only sites with this review status (repeatable).")
    @click.option("--since", default=None, metavar="DATE",
                  help="Only sites a scan looked at on or after DATE (ISO 8601, e.g. 2025-06-01).")
    @click.option("--geofence", type=INPUT_PATH, default=None, metavar="AREA",
                  help="Only sites touching these polygons (GeoJSON, GPKG, SHP; any CRS).")
    @functools.wraps(func)
    def wrapper(*args, status, review, since, geofence, **kwargs):
        from minewatch.infer.catalog.core import parse_when
        from minewatch.infer.catalog.query import Filters

        when = parse_when(since, what="--since") if since is not None else None
        return func(*args, filters=Filters(tuple(status), tuple(review), when, geofence), **kwargs)

    return wrapper


@click.group()
def catalog() -> None:
    """The site catalogue: stable site ids, status over time, analysts' verdicts, evidence.

    \b
    A monitoring campaign:
      minewatch scan flight1/optical.tif --thermal flight1/thermal.tif -o f1/sites.geojson --catalog sites.gpkg
      (review in QGIS: open sites.gpkg, set review_status and analyst_note)
      minewatch scan flight2/optical.tif --thermal flight2/thermal.tif -o f2/sites.geojson --catalog sites.gpkg
      minewatch catalog diff sites.gpkg --since 2025-06-01
      minewatch catalog report sites.gpkg -o report.html --status new --status returned
    """


@catalog.command("add")
@_catalog_argument
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--coverage", type=INPUT_PATH, default=None,
              help="What the scan covered: its tiles.gpkg (scan --tiles-out) or footprint polygons.")
@click.option("--optical", type=INPUT_PATH, default=None, help="The scene's optical raster (for chips and labels).")
@click.option("--thermal", type=INPUT_PATH, default=None, help="The scene's thermal raster.")
@click.option("--scene-id", default=None, help="Scene id, for a sites file without sites.")
@click.option("--acquired", default=None, metavar="DATE", help="Acquisition date, when the sites file lacks it.")
@common_options
def add(catalog, results, coverage, optical, thermal, scene_id, acquired) -> None:
    """Add scan results (sites files or scan output folders) to the catalogue CAT (created if needed).

    A site seen again is matched by overlap with a known site (at least a quarter of the smaller outline),
    never by rank; adding the same results twice changes nothing; review_status and analyst_note are
    never overwritten. A folder holds sites.geojson, and tiles.gpkg and the scene rasters when present.

    \b
    Example:
      minewatch catalog add sites.gpkg demo-out
      minewatch catalog add sites.gpkg june/sites.geojson --coverage june/tiles.gpkg --optical june/optical.tif
    """
    from minewatch.infer.catalog.core import parse_when
    from minewatch.infer.catalog.ingest import batches_from_results
    from minewatch.infer.catalog.store import check_location, opened
    from minewatch.infer.catalog.update import add_batches

    check_location(catalog)
    when = parse_when(acquired, what="--acquired") if acquired is not None else None
    batches = batches_from_results(list(results), coverage=coverage, optical=optical, thermal=thermal,
                                   scene_id=scene_id, acquired=when)
    with opened(catalog, create=True) as store:
        for summary in add_batches(store, batches):
            click.echo(summary.line())
            for note in summary.batch.notes if not summary.skipped else []:
                click.echo(f"  note: {note}")


@catalog.command("list")
@_catalog_argument
@filter_options
@common_options
def list_(catalog, filters) -> None:
    """List the catalogue's sites as a table.

    \b
    Example:
      minewatch catalog list sites.gpkg --status new --review unreviewed
    """
    from minewatch.infer.catalog.query import format_table, load_sites
    from minewatch.infer.catalog.store import opened

    with opened(catalog) as store:
        sites = load_sites(store, filters)
    click.echo(f"{len(sites)} site(s): {filters.describe()}")
    if len(sites):
        click.echo(format_table(sites))


@catalog.command("export")
@_catalog_argument
@click.option("-o", "--out", type=OUT_FILE, required=True, help="OUT.geojson (RFC 7946), OUT.gpkg or OUT.csv.")
@filter_options
@common_options
def export(catalog, out, filters) -> None:
    """Export sites as GeoJSON (RFC 7946), GeoPackage (styled) or CSV.

    \b
    Example:
      minewatch catalog export sites.gpkg -o confirmed.geojson --review confirmed
    """
    from minewatch.infer.catalog.query import export_sites, load_sites
    from minewatch.infer.catalog.store import opened

    with opened(catalog) as store:
        sites = load_sites(store, filters)
    export_sites(sites, out)
    click.echo(f"wrote {len(sites)} site(s) to {out}")


@catalog.command("diff")
@_catalog_argument
@click.option("--since", required=True, metavar="DATE", help="Compare the state before DATE with now.")
@click.option("--status", "status", multiple=True, type=click.Choice(STATUS_CHOICES), help="Only these statuses.")
@click.option("--review", "review", multiple=True, type=click.Choice(REVIEW_CHOICES), help="Only these reviews.")
@click.option("--geofence", type=INPUT_PATH, default=None, metavar="AREA", help="Only sites touching these polygons.")
@click.option("-o", "--out", type=OUT_FILE, default=None, help="Also write the changed sites (.geojson/.gpkg/.csv).")
@common_options
def diff(catalog, since, status, review, geofence, out) -> None:
    """What appeared (new or returned) and what vanished (gone) on or after DATE.

    A vanished site names the nearest site that appeared within 5 km: a farm that moved.

    \b
    Example:
      minewatch catalog diff sites.gpkg --since 2025-06-01 -o changes.geojson
    """
    from minewatch.infer.catalog.core import parse_when
    from minewatch.infer.catalog.query import Filters, diff_since, export_sites
    from minewatch.infer.catalog.store import opened

    when = parse_when(since, what="--since")
    with opened(catalog) as store:
        result = diff_since(store, when, Filters(tuple(status), tuple(review), None, geofence))
    click.echo(result.table())
    if out is not None:
        export_sites(result.frame(), out)
        click.echo(f"wrote {len(result.frame())} changed site(s) to {out}")


@catalog.command("report")
@_catalog_argument
@click.option("-o", "--out", type=OUT_FILE, required=True, help="Output HTML file (self-contained).")
@click.option("--title", default="minewatch evidence report", show_default=True, help="Page title.")
@filter_options
@common_options
def report(catalog, out, title, filters) -> None:
    """One self-contained HTML page for inspectors: map, and per site chips, history, scores, review.

    Print it to PDF from a browser.

    \b
    Example:
      minewatch catalog report sites.gpkg -o report.html --review confirmed
    """
    from minewatch.infer.catalog.report import write_report
    from minewatch.infer.catalog.store import opened

    with opened(catalog) as store:
        n = write_report(store, out, filters=filters, title=title)
    click.echo(f"wrote {out} ({n} site(s))")


@catalog.command("labels")
@_catalog_argument
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder of scene folders to write (replaced if it holds labels from an earlier run).")
@click.option("--complete-only", is_flag=True,
              help="Only scenes in which every sighted site has a verdict (confirmed or rejected).")
@filter_options
@common_options
def labels(catalog, out, complete_only, filters) -> None:
    """Turn analysts' verdicts into scene folders for training: confirmed sites are positives of their
    classes, rejected sites look-alikes (class lookalike, kind rejected).

    One folder per scene the reviewed sites were seen in, with links to its rasters and a truth.geojson;
    list OUT under data.train_scenes in a training config.

    \b
    Example:
      minewatch catalog labels sites.gpkg -o labels/
    """
    from minewatch.infer.catalog.labels import write_labels
    from minewatch.infer.catalog.store import opened

    with opened(catalog) as store:
        result = write_labels(store, out, filters=filters, complete_only=complete_only)
    click.echo(result.summary())
