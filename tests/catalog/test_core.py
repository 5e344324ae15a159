"""The catalogue's pure rules: dates, matching by overlap, status over looks, diff."""

from __future__ import annotations

import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from minewatch.errors import UserError
from minewatch.infer.catalog.core import (
    MATCH_SHARE,
    Look,
    covered_shares,
    diff_kind,
    fold_status,
    looks,
    match_outlines,
    parse_when,
)


def windows(x: float, y: float, w: int, h: int) -> shapely.Geometry:
    """A site outline as the scan makes it: the union of 64 m windows at a 32 m stride."""
    return shapely.union_all([shapely.box(x + 32 * i, y + 32 * j, x + 32 * i + 64, y + 32 * j + 64)
                              for i in range(w) for j in range(h)])


@pytest.mark.parametrize("text, expected", [
    ("2025-06-01", "2025-06-01T00:00:00Z"),
    ("2025-06-01T10:30:00Z", "2025-06-01T10:30:00Z"),
    ("2025-06-01T12:30:00+02:00", "2025-06-01T10:30:00Z"),
    ("2025-06-01T10:30:00.123456", "2025-06-01T10:30:00Z"),
])
def test_parse_when(text, expected):
    assert parse_when(text) == expected


@pytest.mark.parametrize("text", ["2025-13-01", "June", "", "01/06/2025"])
def test_parse_when_refuses_with_one_line(text):
    with pytest.raises(UserError) as err:
        parse_when(text, what="--since")
    assert "--since" in err.value.one_line() and "\n" not in err.value.one_line()


@settings(max_examples=60, deadline=None)
@given(w=st.integers(1, 4), h=st.integers(1, 4), dx=st.floats(-26, 26), dy=st.floats(-26, 26))
def test_same_farm_rescanned_matches_itself(w, h, dx, dy):
    """A grid shifted by up to half a stride plus 10 m of georegistration error still matches."""
    old = windows(0, 0, w, h)
    new = windows(dx, dy, w, h)
    (matches,) = match_outlines([new], [old])
    assert len(matches) == 1 and matches[0][0] == 0 and matches[0][1] >= MATCH_SHARE


def test_moved_farm_is_not_matched():
    old = windows(0, 0, 2, 2)
    assert match_outlines([windows(200, 0, 2, 2)], [old]) == [[]]  # moved 200 m: a new site
    assert match_outlines([windows(96, 0, 2, 2)], [old]) == [[]]  # touching the old outline only


def test_partial_sighting_matches_and_neighbour_does_not():
    farm = windows(0, 0, 4, 3)
    half_clouded = windows(0, 0, 2, 1)  # only part of the farm fired
    neighbour = windows(150, 0, 2, 2)  # a new farm whose outline grazes the old one
    out = match_outlines([half_clouded, neighbour], [farm])
    assert out[0] and out[0][0][0] == 0 and out[0][0][1] == pytest.approx(1.0)
    assert out[1] == []


def test_merged_outline_matches_both_sites_best_first():
    a, b = windows(0, 0, 2, 2), windows(160, 0, 2, 2)
    merged = shapely.union_all([windows(0, 0, 2, 2), windows(64, 0, 4, 2), windows(160, 0, 2, 2)])
    out = match_outlines([merged], [a, b])[0]
    assert {j for j, _ in out} == {0, 1}
    assert [s for _, s in out] == sorted([s for _, s in out], reverse=True)


def test_covered_shares():
    site = shapely.box(0, 0, 10, 10)
    assert covered_shares([site], shapely.box(-5, -5, 20, 20))[0] == pytest.approx(1.0)
    assert covered_shares([site], shapely.box(5, -5, 20, 20))[0] == pytest.approx(0.5)
    assert covered_shares([site], None)[0] == 0.0


@pytest.mark.parametrize("events, expected", [
    ([("d1", True)], ("new", "d1")),
    ([("d1", True), ("d2", True)], ("persisting", "d2")),
    ([("d1", True), ("d2", True), ("d3", True)], ("persisting", "d2")),
    ([("d1", True), ("d2", False)], ("gone", "d2")),
    ([("d1", True), ("d2", False), ("d3", False)], ("gone", "d2")),
    ([("d1", True), ("d2", False), ("d3", True)], ("returned", "d3")),
    ([("d1", True), ("d2", False), ("d3", True), ("d4", True)], ("persisting", "d4")),
    ([("d0", False), ("d1", True)], ("new", "d1")),  # covered before it appeared: still new
    ([("d0", False)], None),
])
def test_fold_status(events, expected):
    assert fold_status([Look(d, s) for d, s in events]) == expected


def test_same_day_sighting_wins_over_a_miss():
    assert looks(["2025-06-01"], ["2025-06-01", "2025-09-01"]) == [Look("2025-06-01", True),
                                                                   Look("2025-09-01", False)]


def test_status_as_of_a_day():
    history = [Look("2025-03-01", True), Look("2025-06-01", True), Look("2025-09-01", False)]
    assert fold_status(history, before="2025-06-01") == ("new", "2025-03-01")
    assert fold_status(history, before="2025-01-01") is None


@pytest.mark.parametrize("events, since, kind", [
    ([("2025-03-01", True), ("2025-09-01", True)], "2025-09-01", "persisted"),
    ([("2025-09-01", True)], "2025-09-01", "appeared"),
    ([("2025-03-01", True), ("2025-09-01", False)], "2025-09-01", "vanished"),
    ([("2025-03-01", True), ("2025-06-01", False), ("2025-09-01", True)], "2025-09-01", "appeared"),
    ([("2025-03-01", True), ("2025-06-01", False)], "2025-09-01", None),  # gone before: no news
    ([("2025-03-01", True)], "2025-09-01", None),  # not looked at since
])
def test_diff_kind(events, since, kind):
    assert diff_kind([Look(d, s) for d, s in events], since) == kind
