"""Default QGIS styles for the catalogue's layers, stored in QGIS's ``layer_styles`` table so the layers open
styled: sites filled by ``status`` and outlined by ``review_status`` (a rule-based renderer with two groups of
rules, so the legend shows both), labelled with their id, with a drop-down for ``review_status`` and the
scan-owned fields read-only in the attribute form; sightings and coverage as thin outlines.

QML is QGIS's own format (what "Save style" writes); SLD is the OGC equivalent for other clients.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from minewatch.infer.catalog.schema import (
    CONFIRMED,
    GEOM,
    GONE,
    NEW,
    PERSISTING,
    REJECTED,
    RETURNED,
    REVIEW_COLUMNS,
    REVIEW_STATUSES,
    SITES,
    STATUSES,
    UNREVIEWED,
    UNSURE,
)

STATUS_FILL: dict[str, str] = {
    NEW: "227,26,28,170",          # red: look here first
    RETURNED: "152,78,163,170",    # purple: back after it was gone
    PERSISTING: "255,127,0,140",   # orange
    GONE: "150,150,150,90",        # grey
}
# (colour, width mm, pen style)
REVIEW_OUTLINE: dict[str, tuple[str, float, str]] = {
    UNREVIEWED: ("35,35,35,255", 0.4, "dash"),
    CONFIRMED: ("26,150,65,255", 1.2, "solid"),
    REJECTED: ("44,123,182,255", 1.2, "dot"),
    UNSURE: ("255,215,0,255", 1.2, "solid"),
}
assert set(STATUS_FILL) == set(STATUSES) and set(REVIEW_OUTLINE) == set(REVIEW_STATUSES)

STYLE_NAME = "minewatch"
QGIS_DOCTYPE = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"


def _options(parent: ET.Element, props: dict[str, str]) -> None:
    """Symbol-layer properties both ways QGIS reads them (an Option map, and the older prop list)."""
    opt = ET.SubElement(parent, "Option", type="Map")
    for k, v in props.items():
        ET.SubElement(opt, "Option", name=k, type="QString", value=v)
    for k, v in props.items():
        ET.SubElement(parent, "prop", k=k, v=v)


def _fill_symbol(symbols: ET.Element, name: str, fill: str | None, outline: tuple[str, float, str] | None) -> None:
    sym = ET.SubElement(symbols, "symbol", type="fill", name=name, alpha="1", clip_to_extent="1", force_rhr="0")
    layer = ET.SubElement(sym, "layer", {"class": "SimpleFill", "enabled": "1", "locked": "0", "pass": "0"})
    colour, width, pen = outline or ("0,0,0,0", 0.0, "no")
    _options(layer, {
        "color": fill or "0,0,0,0", "style": "solid" if fill else "no",
        "outline_color": colour, "outline_width": f"{width:g}", "outline_width_unit": "MM", "outline_style": pen,
        "joinstyle": "miter", "offset": "0,0", "offset_unit": "MM",
    })


def _q(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def sites_qml() -> str:
    """The sites layer's QML: fill by status, outline by review, labels, review drop-down."""
    root = ET.Element("qgis", version="3.22.0", styleCategories="Symbology|Labeling|Fields|Forms",
                      labelsEnabled="1")
    renderer = ET.SubElement(root, "renderer-v2", type="RuleRenderer", symbollevels="0", enableorderby="0",
                             forceraster="0")
    rules = ET.SubElement(renderer, "rules", key="root")
    symbols = ET.Element("symbols")
    groups = [("status", "status", "status (fill)", {v: (c, None) for v, c in STATUS_FILL.items()}),
              ("review", "review_status", "review_status (outline)", {v: (None, c) for v, c in REVIEW_OUTLINE.items()})]
    n = 0
    for key, column, label, looks in groups:
        group = ET.SubElement(rules, "rule", key=key, label=label)
        for value, (fill, outline) in looks.items():
            ET.SubElement(group, "rule", key=f"{key}-{value}", label=value, symbol=str(n),
                          filter=f'"{column}" = {_q(value)}')
            _fill_symbol(symbols, str(n), fill, outline)
            n += 1
    renderer.append(symbols)

    labeling = ET.SubElement(root, "labeling", type="simple")
    settings = ET.SubElement(labeling, "settings", calloutType="simple")
    ET.SubElement(settings, "text-style", fieldName="site_id", fontSize="8", fontSizeUnit="Point",
                  textColor="0,0,0,255", isExpression="0", fontFamily="Sans Serif", fontWeight="75")
    ET.SubElement(settings, "text-buffer", bufferDraw="1", bufferSize="0.8", bufferSizeUnits="MM",
                  bufferColor="255,255,255,220")
    ET.SubElement(settings, "placement", placement="1", dist="0", offsetType="0", quadOffset="4")
    ET.SubElement(settings, "rendering", scaleVisibility="0", obstacle="1", displayAll="0")

    fields = ET.SubElement(root, "fieldConfiguration")
    field = ET.SubElement(fields, "field", name="review_status", configurationFlags="None")
    widget = ET.SubElement(field, "editWidget", type="ValueMap")
    config = ET.SubElement(ET.SubElement(widget, "config"), "Option", type="Map")
    values = ET.SubElement(config, "Option", name="map", type="List")
    for review in REVIEW_STATUSES:
        item = ET.SubElement(values, "Option", type="Map")
        ET.SubElement(item, "Option", name=review, type="QString", value=review)
    note = ET.SubElement(fields, "field", name="analyst_note", configurationFlags="None")
    nconf = ET.SubElement(ET.SubElement(ET.SubElement(note, "editWidget", type="TextEdit"), "config"), "Option",
                          type="Map")
    ET.SubElement(nconf, "Option", name="IsMultiline", type="bool", value="true")
    ET.SubElement(nconf, "Option", name="UseHtml", type="bool", value="false")
    editable = ET.SubElement(root, "editable")
    for name in ("fid", *SITES.names):
        if name != GEOM:
            ET.SubElement(editable, "field", name=name, editable="1" if name in REVIEW_COLUMNS else "0")
    defaults = ET.SubElement(root, "defaults")
    ET.SubElement(defaults, "default", field="review_status", expression=_q(UNREVIEWED), applyOnUpdate="0")
    ET.SubElement(root, "previewExpression").text = '"site_id"'
    ET.SubElement(root, "layerGeometryType").text = "2"
    return QGIS_DOCTYPE + ET.tostring(root, encoding="unicode")


def outline_qml(colour: str, width: float, pen: str = "solid") -> str:
    """A plain outline style (sightings, coverage)."""
    root = ET.Element("qgis", version="3.22.0", styleCategories="Symbology")
    renderer = ET.SubElement(root, "renderer-v2", type="singleSymbol", symbollevels="0", enableorderby="0",
                             forceraster="0")
    symbols = ET.SubElement(renderer, "symbols")
    _fill_symbol(symbols, "0", None, (colour, width, pen))
    ET.SubElement(root, "layerGeometryType").text = "2"
    return QGIS_DOCTYPE + ET.tostring(root, encoding="unicode")


SLD_NS = "http://www.opengis.net/sld"
OGC_NS = "http://www.opengis.net/ogc"
SE_NS = "http://www.opengis.net/se"


def _rgba(value: str) -> tuple[str, str]:
    r, g, b, a = (int(x) for x in value.split(","))
    return f"#{r:02x}{g:02x}{b:02x}", f"{a / 255:.2f}"


def sites_sld() -> str:
    """The same styling as OGC SLD 1.1 (fill by status, stroke by review)."""
    ET.register_namespace("", SLD_NS)
    ET.register_namespace("ogc", OGC_NS)
    ET.register_namespace("se", SE_NS)
    sld = ET.Element(f"{{{SLD_NS}}}StyledLayerDescriptor", version="1.1.0")
    layer = ET.SubElement(sld, f"{{{SLD_NS}}}NamedLayer")
    ET.SubElement(layer, f"{{{SE_NS}}}Name").text = "sites"
    style = ET.SubElement(ET.SubElement(layer, f"{{{SLD_NS}}}UserStyle"), f"{{{SE_NS}}}FeatureTypeStyle")

    def rule(field: str, value: str) -> ET.Element:
        r = ET.SubElement(style, f"{{{SE_NS}}}Rule")
        ET.SubElement(r, f"{{{SE_NS}}}Name").text = f"{field} = {value}"
        flt = ET.SubElement(r, f"{{{OGC_NS}}}Filter")
        eq = ET.SubElement(flt, f"{{{OGC_NS}}}PropertyIsEqualTo")
        ET.SubElement(eq, f"{{{OGC_NS}}}PropertyName").text = field
        ET.SubElement(eq, f"{{{OGC_NS}}}Literal").text = value
        return ET.SubElement(r, f"{{{SE_NS}}}PolygonSymbolizer")

    def param(parent: ET.Element, name: str, value: str) -> None:
        ET.SubElement(parent, f"{{{SE_NS}}}SvgParameter", name=name).text = value

    for status, fill in STATUS_FILL.items():
        colour, opacity = _rgba(fill)
        f = ET.SubElement(rule("status", status), f"{{{SE_NS}}}Fill")
        param(f, "fill", colour)
        param(f, "fill-opacity", opacity)
    for review, (colour, width, pen) in REVIEW_OUTLINE.items():
        hexcol, _ = _rgba(colour)
        s = ET.SubElement(rule("review_status", review), f"{{{SE_NS}}}Stroke")
        param(s, "stroke", hexcol)
        param(s, "stroke-width", f"{width * 3.78:.1f}")  # mm -> px at 96 dpi
        if pen == "dash":
            param(s, "stroke-dasharray", "6 3")
        elif pen == "dot":
            param(s, "stroke-dasharray", "2 2")
    return ET.tostring(sld, encoding="unicode", xml_declaration=False)


def default_styles() -> list[dict[str, str]]:
    """One row per layer for ``layer_styles`` (QGIS's columns; catalog and schema filled in by the store)."""
    return [
        {"f_table_name": "sites", "styleQML": sites_qml(), "styleSLD": sites_sld(),
         "description": "minewatch: fill by status, outline by review_status"},
        {"f_table_name": "observations", "styleQML": outline_qml("227,26,28,255", 0.3, "dash"), "styleSLD": "",
         "description": "minewatch: sightings"},
        {"f_table_name": "coverage", "styleQML": outline_qml("31,120,180,255", 0.5), "styleSLD": "",
         "description": "minewatch: scanned footprints"},
    ]
