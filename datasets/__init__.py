"""Raster scenes, thermal conversion, geofences, tiling, labels and synthetic scenes (torch-free)."""
