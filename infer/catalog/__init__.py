"""The site catalogue: candidate sites over time, across scans (issue #16).

``open_store`` opens a catalogue (GeoPackage file or PostGIS URL); ``add_batches`` adds scans to it;
``query`` lists, exports and diffs; ``labels`` turns analysts' verdicts into training scene folders;
``report`` writes the evidence page for inspectors. Storage sits behind :class:`.store.Store`; the rules
(matching, status) are pure functions in :mod:`.core`.
"""
