"""Run by the system Python that has QGIS (``/usr/bin/python3 qgis_review.py URI PROVIDER SITE VERDICT NOTE``):
open the catalogue's sites layer as an analyst would, report how it is styled, and set one site's verdict
through a QGIS edit session. Prints one JSON object."""

import json
import os
import sys

from qgis.core import QgsApplication, QgsVectorLayer

uri, provider, site_id, verdict, note = sys.argv[1:6]
app = QgsApplication([], False)
app.initQgis()
layer = QgsVectorLayer(uri, "sites", provider)
out = {"valid": layer.isValid(), "count": layer.featureCount()}
renderer = layer.renderer()
out["renderer"] = renderer.type()
if renderer.type() == "RuleRenderer":
    out["rules"] = {g.label(): {c.label(): [c.filterExpression(), c.symbol().color().name(),
                                            c.symbol().symbolLayer(0).strokeColor().name()]
                                for c in g.children()}
                    for g in renderer.rootRule().children()}
fields = layer.fields()
review = fields.indexOf("review_status")
out["review_widget"] = layer.editorWidgetSetup(review).type()
out["read_only"] = {f.name(): layer.editFormConfig().readOnly(i) for i, f in enumerate(fields)}
out["labels"] = layer.labelsEnabled()

feature = next(iter(layer.getFeatures(f"\"site_id\" = '{site_id}'")), None)
if feature is not None:
    layer.startEditing()
    layer.changeAttributeValue(feature.id(), review, verdict)
    layer.changeAttributeValue(feature.id(), fields.indexOf("analyst_note"), note)
    out["committed"] = layer.commitChanges()
    out["errors"] = layer.commitErrors()
del feature, layer  # closes the data source: the edit is on disk
print(json.dumps(out), flush=True)
os._exit(0)  # QGIS's own teardown can crash a headless process after the work is done
