"""Dense-head targets: container blocks split into bodies, soft coverage rasterised per window."""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pytest
import shapely
from affine import Affine

from minewatch.datasets.masks import (
    CONTAINER_WIDTH_M,
    ObjectLayers,
    block_teu,
    container_bodies,
    object_layers,
)

UTM = "EPSG:32633"


def block(n: int, length: float, gap: float, *, angle: float = 0.0, origin=(500_000.0, 5_000_000.0)) -> shapely.Polygon:
    """A block of ``n`` containers side by side, rotated by ``angle`` degrees about its corner."""
    width = n * CONTAINER_WIDTH_M + (n - 1) * gap
    poly = shapely.box(origin[0], origin[1], origin[0] + length, origin[1] + width)
    return shapely.affinity.rotate(poly, angle, origin=origin)


@pytest.mark.parametrize("n,length,gap,angle", [(5, 12.19, 1.0, 0.0), (6, 6.06, 0.7, 33.0), (1, 12.19, 0.0, -71.0),
                                                (14, 12.19, 2.5, 90.0), (3, 6.06, 0.3, 12.5)])
def test_a_block_splits_into_its_container_bodies(n, length, gap, angle):
    b = block(n, length, gap, angle=angle)
    bodies = container_bodies(b, n)
    assert bodies is not None and len(bodies) == n
    for body in bodies:
        assert body.area == pytest.approx(length * CONTAINER_WIDTH_M, rel=1e-3)
        assert b.buffer(1e-3).contains(body)  # the oriented envelope is exact to ~1 mm
    assert shapely.union_all(bodies).area == pytest.approx(n * length * CONTAINER_WIDTH_M, rel=1e-3)  # disjoint
    assert block_teu(b, n) == n * (2 if length > 9 else 1)


def test_shapes_that_are_not_blocks_of_containers_stay_whole():
    assert container_bodies(shapely.box(0, 0, 30, 20), 4) is None  # no side is a container length
    assert container_bodies(block(5, 12.19, 1.0), 9) is None  # 9 containers do not fit
    ell = shapely.union(shapely.box(0, 0, 12.19, 10), shapely.box(0, 0, 20, 2.44))
    assert container_bodies(ell, 3) is None
    assert container_bodies(block(5, 12.19, 1.0), 0) is None
    # a known length and gap decide a block the side lengths alone would not
    assert len(container_bodies(block(2, 12.19, 1.18), 2, length_m=12.19, gap_m=1.18)) == 2


def truth(*rows: dict) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(list(rows), geometry=[r.pop("geometry") for r in rows], crs=UTM)


def test_object_layers_rasterise_to_area_preserving_coverage():
    farm = block(4, 12.19, 1.5, angle=20.0, origin=(500_010.0, 5_000_010.0))
    fans = shapely.box(500_010.0, 5_000_005.0, 500_020.0, 5_000_006.5)
    heat = farm.buffer(3.0)
    layers = object_layers(truth(
        {"class": "container_farm", "n_containers": 4, "dt_k": 1.0, "geometry": farm},
        {"class": "cooling_array", "n_containers": 4, "dt_k": 1.0, "geometry": fans},
        {"class": "heat_signature", "n_containers": 0, "dt_k": 9.0, "geometry": heat},
        {"class": "heat_signature", "n_containers": 0, "dt_k": 1.0, "geometry": shapely.box(0, 0, 1, 1)},
        {"class": "lookalike", "n_containers": 0, "dt_k": 1.0, "geometry": shapely.box(1, 1, 2, 2)},
    ), UTM)
    assert [len(layers.geoms[n]) for n in ("container", "cooling", "heat")] == [4, 1, 1]  # faint heat left out
    transform = Affine(0.5, 0, 500_000.0, 0, -0.5, 5_000_050.0)
    cover = layers.rasterize(transform, 100, 100)
    assert cover.shape == (3, 100, 100) and cover.dtype == np.float32
    assert 0 <= cover.min() and cover.max() <= 1
    areas = cover.sum(axis=(1, 2)) * 0.25
    assert areas[0] == pytest.approx(4 * 12.19 * 2.44, rel=0.02)  # bodies only: the gaps are not roof
    assert areas[1] == pytest.approx(fans.area, rel=0.02)
    assert areas[2] == pytest.approx(heat.area, rel=0.02)
    # a window away from the objects is empty; the layers survive pickling (DataLoader workers)
    assert not layers.rasterize(Affine(0.5, 0, 400_000.0, 0, -0.5, 5_000_050.0), 16, 16).any()
    import pickle

    again = pickle.loads(pickle.dumps(layers))
    assert np.array_equal(again.rasterize(transform, 100, 100), cover)


def test_an_analyst_farm_outline_is_all_container_and_no_truth_is_empty():
    outline = shapely.box(500_000.0, 5_000_000.0, 500_030.0, 5_000_020.0)
    layers = object_layers(truth({"class": "container_farm", "geometry": outline}), UTM)
    assert len(layers.geoms["container"]) == 1 and layers.geoms["container"][0].equals(outline)
    empty = ObjectLayers.empty(("container", "heat"))
    assert not empty.any()
    assert not empty.rasterize(Affine(0.5, 0, 0, 0, -0.5, 0), 8, 8).any()
    assert math.isclose(block_teu(outline, 3), 3.0)  # undecidable: one per container
