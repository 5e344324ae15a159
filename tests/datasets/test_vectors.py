"""Reading vector files: the feature layer of a GeoPackage, whatever tables QGIS or minewatch put beside it."""

from __future__ import annotations

import logging
import warnings

import geopandas as gpd
import shapely

from minewatch.datasets.vectors import read_vector
from minewatch.infer.styles import add_layer_style, sites_qml


def _squares(n: int) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"site_id": [f"s{i}" for i in range(n)]},
                            geometry=[shapely.box(i * 10, 0, i * 10 + 5, 5) for i in range(n)], crs=32633)


def test_a_styled_geopackage_reads_its_features_without_a_warning(tmp_path):
    path = tmp_path / "sites.gpkg"
    _squares(3).to_file(path, layer="sites", engine="pyogrio")
    add_layer_style(path, "sites", sites_qml())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pyogrio warns "More than one layer found" when it has to guess
        sites = read_vector(path, role="sites")
    assert sites["site_id"].tolist() == ["s0", "s1", "s2"]


def test_of_several_feature_layers_the_first_is_read_and_named(tmp_path, caplog):
    path = tmp_path / "two.gpkg"
    _squares(2).to_file(path, layer="first", engine="pyogrio")
    _squares(4).to_file(path, layer="second", engine="pyogrio")
    with caplog.at_level(logging.INFO, logger="minewatch.datasets.vectors"):
        got = read_vector(path, role="labels")
    assert len(got) == 2 and "reading first" in caplog.text
