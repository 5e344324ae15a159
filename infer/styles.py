"""QGIS styles for the scan's outputs, so they open readable: sites outlined by rank over the imagery, the
heatmap as a semi-transparent colour per class, tiles shaded by score.

QGIS loads ``<name>.qml`` beside a GeoJSON or GeoTIFF automatically, and a GeoPackage layer's default
style from the package's ``layer_styles`` table (the table QGIS itself writes when a style is saved into
a GeoPackage).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import quoteattr

from minewatch.classes import CLASSES

QGIS_VERSION = "3.22.0"
RANK_CLASSES = ((1, 3, "227,26,28", 1.2), (4, 10, "253,141,60", 0.8), (11, 1_000_000, "255,237,111", 0.5))
"""Site outline by rank: (first, last, colour, width in mm): the top three stand out."""
TILE_SHADES = ((0.0, 0.5, "0,0,0,0"), (0.5, 0.75, "253,141,60,90"), (0.75, 1.0001, "227,26,28,140"))
"""Tile fill by probability: transparent below 0.5, then orange and red, see-through."""
HEATMAP_OPACITY = 0.6


def _fill_symbol(name: str, fill: str, outline: str, width: float) -> str:
    return f"""<symbol type="fill" name="{name}" alpha="1" clip_to_extent="1" force_rhr="0">
        <layer class="SimpleFill" enabled="1" locked="0" pass="0">
          <Option type="Map">
            <Option name="color" type="QString" value="{fill}"/>
            <Option name="outline_color" type="QString" value="{outline}"/>
            <Option name="outline_style" type="QString" value="solid"/>
            <Option name="outline_width" type="QString" value="{width}"/>
            <Option name="outline_width_unit" type="QString" value="MM"/>
            <Option name="style" type="QString" value="solid"/>
          </Option>
        </layer>
      </symbol>"""


def _graduated(attr: str, ranges: Sequence[tuple[float, float, str, str, float]]) -> str:
    """A graduated renderer: (lower, upper, label, fill, outline, width) per range."""
    rng = "\n".join(f'      <range lower="{lo}" upper="{hi}" symbol="{i}" label={quoteattr(label)} render="true"/>'
                    for i, (lo, hi, label, _, _, _) in enumerate(ranges))
    sym = "\n      ".join(_fill_symbol(str(i), fill, outline, width)
                          for i, (_, _, _, fill, outline, width) in enumerate(ranges))
    return f"""<renderer-v2 type="graduatedSymbol" attr="{attr}" graduatedMethod="GraduatedColor" symbollevels="0"
      enableorderby="0" forceraster="0">
    <ranges>
{rng}
    </ranges>
    <symbols>
      {sym}
    </symbols>
    <mode name="manual"/>
  </renderer-v2>"""


def _document(body: str, categories: str = "Symbology|Labeling") -> str:
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="{QGIS_VERSION}" styleCategories="{categories}">
  {body}
</qgis>
"""


def sites_qml() -> str:
    """Sites: no fill (the imagery stays visible), outlined by rank, labelled with the rank."""
    ranges = [(lo - 0.5, hi + 0.5, f"rank {lo}-{hi}" if hi < 1000 else f"rank {lo}+", f"{c},0", f"{c},255", w)
              for lo, hi, c, w in RANK_CLASSES]
    labels = """<labeling type="simple">
    <settings calloutType="simple">
      <text-style fieldName="rank" isExpression="0" fontSize="10" fontWeight="75" textColor="255,255,255,255"
        textOpacity="1" fontFamily="Sans Serif" namedStyle="Bold"/>
      <text-buffer bufferDraw="1" bufferSize="1" bufferSizeUnits="MM" bufferColor="0,0,0,255" bufferOpacity="1"/>
      <placement placement="1" offsetType="0" priority="9"/>
      <rendering obstacle="1" displayAll="1"/>
    </settings>
  </labeling>"""
    return _document(_graduated("rank", ranges) + "\n  " + labels)


def tiles_qml(column: str = f"p_{CLASSES[0]}") -> str:
    """Tiles: transparent below 0.5, orange then red above, by the probability in ``column``."""
    ranges = [(lo, hi, f"{column} {lo:g}-{min(hi, 1):g}", fill, "0,0,0,0" if fill.endswith(",0") else fill, 0.1)
              for lo, hi, fill in TILE_SHADES]
    return _document(_graduated(column, ranges), "Symbology")


def windows_qml() -> str:
    """The windows a scan would read (``minewatch tiles``): cyan outlines, no fill."""
    return _document(f"""<renderer-v2 type="singleSymbol" symbollevels="0" enableorderby="0" forceraster="0">
    <symbols>
      {_fill_symbol("0", "0,0,0,0", "0,229,238,255", 0.3)}
    </symbols>
  </renderer-v2>""", "Symbology")


def heatmap_qml(classes: Sequence[str] = CLASSES) -> str:
    """Heatmap: one colour per class (red, green, blue = the first three classes), semi-transparent over the
    imagery, 0..1 stretched, unscanned (NaN) transparent."""
    def enhancement(tag: str) -> str:
        return (f"<{tag}><minValue>0</minValue><maxValue>1</maxValue>"
                f"<algorithm>StretchToMinimumMaximum</algorithm></{tag}>")

    bands = [str(i + 1) for i in range(min(3, len(classes)))] + ["-1"] * (3 - min(3, len(classes)))
    body = f"""<pipe>
    <rasterrenderer type="multibandcolor" opacity="{HEATMAP_OPACITY}" alphaBand="-1" redBand="{bands[0]}"
      greenBand="{bands[1]}" blueBand="{bands[2]}" nodataColor="">
      <rasterTransparency/>
      <minMaxOrigin><limits>None</limits><extent>WholeRaster</extent><statAccuracy>Estimated</statAccuracy>
        <cumulativeCutLower>0.02</cumulativeCutLower><cumulativeCutUpper>0.98</cumulativeCutUpper>
        <stdDevFactor>2</stdDevFactor></minMaxOrigin>
      {enhancement("redContrastEnhancement")}
      {enhancement("greenContrastEnhancement")}
      {enhancement("blueContrastEnhancement")}
    </rasterrenderer>
    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>
    <huesaturation saturation="0" grayscaleMode="0" colorizeOn="0"/>
    <rasterresampler maxOversampling="2"/>
  </pipe>
  <blendMode>0</blendMode>"""
    return _document(body, "Symbology")


def qml_path(target: Path) -> Path:
    """Where QGIS looks for the default style of ``target``."""
    return target.with_suffix(".qml")


def add_layer_style(gpkg: Path, layer: str, qml: str, *, name: str = "minewatch") -> None:
    """Store ``qml`` as the default style of ``layer`` in the GeoPackage's ``layer_styles`` table."""
    with sqlite3.connect(gpkg) as db:
        geom = db.execute("SELECT column_name FROM gpkg_geometry_columns WHERE table_name = ?", (layer,)).fetchone()
        db.execute("""CREATE TABLE IF NOT EXISTS layer_styles (
            id INTEGER PRIMARY KEY AUTOINCREMENT, f_table_catalog TEXT(256), f_table_schema TEXT(256),
            f_table_name TEXT(256), f_geometry_column TEXT(256), styleName TEXT(30), styleQML TEXT, styleSLD TEXT,
            useAsDefault BOOLEAN, description TEXT, owner TEXT(30), ui TEXT(30),
            update_time DATETIME DEFAULT CURRENT_TIMESTAMP)""")
        db.execute("""INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier, description)
                      VALUES ('layer_styles', 'attributes', 'layer_styles', 'QGIS layer styles')""")
        db.execute("DELETE FROM layer_styles WHERE f_table_name = ? AND styleName = ?", (layer, name))
        db.execute("""INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, f_geometry_column,
                      styleName, styleQML, styleSLD, useAsDefault, description, owner, ui, update_time)
                      VALUES ('', '', ?, ?, ?, ?, '', 1, 'written by minewatch', '', '',
                              strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))""",
                   (layer, geom[0] if geom else "geom", name, qml))
