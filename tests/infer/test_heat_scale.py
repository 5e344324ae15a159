"""The heat-by-farm-size figures of the satellite card (#19): from the generator's own heat sources."""

from __future__ import annotations

from minewatch.infer.heat_scale import FarmHeat, detectable_from, measure, table_lines


def test_a_large_farm_warms_a_100_m_pixel_by_kelvins_a_small_one_by_a_fraction():
    placed_s, small, sigma, _, _ = measure(10, 8000)
    placed_l, large, _, _, _ = measure(300, 8600)
    assert placed_s == 10 and 280 <= placed_l <= 310  # sizes as asked (the generator's draw corrected for)
    assert small < 1.0 < 2.0 < large and sigma > 0
    rows = [FarmHeat(10, [10], [small], [sigma], [False], [0.0]), FarmHeat(300, [placed_l], [large], [sigma],
                                                                           [True], [0.0])]
    assert detectable_from(rows) == (300 if large >= 3 else None)
    assert len(table_lines(rows)) == 4
