"""Windows never leave the raster, cover it without gaps at stride = size, overlap exactly as asked."""

import numpy as np
import shapely
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st

from minewatch.datasets.tiling import axis_offsets, grid_tiles, tile_polygons, tiles_to_gdf

sizes = st.integers(min_value=1, max_value=400)


@settings(max_examples=200, deadline=None)
@given(length=st.integers(1, 3000), size=sizes, data=st.data())
def test_offsets_stay_inside_and_cover(length, size, data):
    stride = data.draw(st.integers(1, size))
    offsets = axis_offsets(length, size, stride)
    assert offsets[0] == 0
    assert all(o >= 0 and o + min(size, length) <= length for o in offsets)  # never past the edge
    assert offsets == sorted(set(offsets))
    covered = np.zeros(length, dtype=bool)
    for o in offsets:
        covered[o: o + size] = True
    assert covered.all()  # no gaps
    gaps = np.diff(offsets)
    if len(gaps) > 1:
        assert (gaps[:-1] == stride).all()  # exact stride except the last, shifted-back window
    if len(gaps):
        assert 0 < gaps[-1] <= stride
    if length >= size:
        assert offsets[-1] + size == length  # the last window ends at the edge


@settings(max_examples=60, deadline=None)
@given(w=st.integers(1, 600), h=st.integers(1, 600), size=st.integers(8, 128))
def test_grid_at_stride_equal_size_tiles_the_raster_exactly(w, h, size):
    tiles = grid_tiles(w, h, size, size)
    cover = np.zeros((h, w), dtype=np.int32)
    for t in tiles:
        assert t.col_off + t.width <= w and t.row_off + t.height <= h
        cover[t.row_off: t.row_off + t.height, t.col_off: t.col_off + t.width] += 1
    assert (cover >= 1).all()
    # overlap only in the last row/column, which is shifted back
    if w % size == 0 and h % size == 0:
        assert (cover == 1).all()


def test_overlap_is_exactly_as_asked():
    tiles = grid_tiles(256, 64, 64, 32)
    cols = sorted({t.col_off for t in tiles})
    assert cols == [0, 32, 64, 96, 128, 160, 192]
    polys = tile_polygons([t for t in tiles if t.row == 0][:2], Affine(0.5, 0, 0, 0, -0.5, 0))
    assert shapely.area(shapely.intersection(polys[0], polys[1])) == 0.5 * shapely.area(polys[0])


def test_tile_ids_are_stable_and_unique():
    a = grid_tiles(500, 300, 64, 48)
    b = grid_tiles(500, 300, 64, 48)
    assert [t.tile_id for t in a] == [t.tile_id for t in b]
    assert len({t.tile_id for t in a}) == len(a)


def test_gdf_geometry_matches_pixels():
    tr = Affine(0.5, 0, 1000.0, 0, -0.5, 2000.0)
    gdf = tiles_to_gdf(grid_tiles(100, 100, 64, 64), tr, "EPSG:32633")
    assert len(gdf) == 4
    first = gdf.iloc[0].geometry.bounds
    assert first == (1000.0, 2000.0 - 32.0, 1032.0, 2000.0)
    last = gdf.iloc[-1].geometry.bounds  # shifted back: ends at the raster edge
    assert last[2] == 1050.0 and last[1] == 1950.0
