"""The catalogue's rules as pure functions: dates, matching a sighting to a known site, site status, diff.

No I/O here: the stores read and write rows, :mod:`.update` applies these rules inside one transaction.

Matching rule (:func:`match_outlines`). A sighting (an outline from one scan) is the same site as a catalogue
site when their overlap is at least ``MATCH_SHARE`` (a quarter) of the smaller of the two outlines; never by
rank, which changes whenever scores do. Why this works: a site is a union of 64 m windows at a 32 m stride
around what the model saw, so the outline extends about half a window past the farm on every side. The same
farm rescanned, on a grid shifted by up to half a stride and with a few metres of georegistration error
(drone GPS, orthorectified satellite), gives an outline that covers at least ~35 % of the old one even for a
single-window site, and far more for larger ones; a farm that is half hidden by cloud, or that grew, still
lies mostly inside the other outline, which the "smaller of the two" takes care of. A farm that moved by more
than about a window (~60 m) overlaps its old outline by little or nothing, so it becomes a new site and the
old one goes ``gone`` once a later scene covers it: the case the regulator cares about. Area shares are
computed in lon/lat: a ratio of areas is unchanged by the (locally affine) map projection at site scale.

A sighting that matches several catalogue sites (two farms whose outlines merged in a new scan) is recorded
against each of them, flagged ``shared``; catalogue sites are never merged or split automatically, so ids stay
stable. A sighting that matches none starts a new site.

Status rule (:func:`fold_status`). Per site, the looks at it are ordered by acquisition day (UTC): a day is a
sighting when any scan that day matched it, a miss when a scan's valid footprint covered at least
``COVER_SHARE`` of its outline and none matched it. Misses before the first sighting do not count. Then:
first sighting -> ``new``; a sighting after a sighting -> ``persisting``; a miss -> ``gone`` (only where a later
scene covered it and found nothing: a scene that did not cover the site says nothing about it); a sighting
after ``gone`` -> ``returned``. Scans on the same day are one look (two passes of one flight).
Status is recomputed from the whole history, so adding scans out of date order gives the same statuses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone

import numpy as np
import shapely

from minewatch.classes import CLASSES
from minewatch.errors import UserError
from minewatch.infer.catalog.schema import GONE, NEW, PERSISTING, RETURNED

MATCH_SHARE = 0.25
"""A sighting matches a site when they overlap by at least this share of the smaller outline."""
COVER_SHARE = 0.8
"""A scene covered a site when its valid footprint holds at least this share of the site's outline."""

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


# ---------------------------------------------------------------- dates
def parse_when(value: object, *, what: str = "date", path: object = None) -> str:
    """An ISO 8601 date or date-time as a normalised UTC string ``YYYY-MM-DDTHH:MM:SSZ``.

    A date alone means 00:00 UTC; a time without offset is taken as UTC. Refuses anything else with a
    one-line :class:`UserError` naming ``what`` (e.g. ``"--since"``).
    """
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    else:
        given = str(value).strip() if value is not None else ""
        if not given:
            raise UserError(f"{what} is missing", path=path, fix="give an ISO 8601 date such as 2025-06-01")
        text = given + "T00:00:00" if _DATE_ONLY.match(given) else given
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise UserError(f"{what} {given!r} is not an ISO 8601 date", path=path,
                            fix="give a date such as 2025-06-01 or 2025-06-01T10:30:00Z") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def day_of(when: str) -> str:
    """The UTC day ``YYYY-MM-DD`` of a normalised time."""
    return when[:10]


# ---------------------------------------------------------------- matching
def match_outlines(observed: Sequence, known: Sequence, share: float = MATCH_SHARE) -> list[list[tuple[int, float]]]:
    """For each observed outline, the known outlines it matches and their overlap share, best first.

    Overlap share = area of the intersection / area of the smaller outline (see the module notes).
    Both sequences hold shapely polygons in one CRS (lon/lat is fine: only area ratios are used).
    """
    obs = np.asarray(observed, dtype=object)
    out: list[list[tuple[int, float]]] = [[] for _ in range(len(obs))]
    if len(obs) == 0 or len(known) == 0:
        return out
    kn = np.asarray(known, dtype=object)
    i, j = shapely.STRtree(kn).query(obs, predicate="intersects")
    if len(i) == 0:
        return out
    inter = shapely.area(shapely.intersection(obs[i], kn[j]))
    smaller = np.minimum(shapely.area(obs[i]), shapely.area(kn[j]))
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(smaller > 0, inter / smaller, 0.0)
    for a, b, v in zip(i.tolist(), j.tolist(), s.tolist(), strict=True):
        if v >= share:
            out[a].append((b, float(v)))
    for pairs in out:
        pairs.sort(key=lambda p: (-p[1], p[0]))
    return out


def covered_shares(outlines: Sequence, footprint) -> np.ndarray:
    """Share of each outline inside ``footprint`` (0 where the footprint is unknown: None or empty)."""
    geoms = np.asarray(outlines, dtype=object)
    if footprint is None or shapely.is_empty(footprint) or len(geoms) == 0:
        return np.zeros(len(geoms))
    shapely.prepare(footprint)
    area = shapely.area(geoms)
    inside = shapely.area(shapely.intersection(geoms, footprint))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(area > 0, inside / area, 0.0)


# ---------------------------------------------------------------- status
@dataclass(frozen=True)
class Look:
    """One look at a site: on ``day`` (YYYY-MM-DD) a scan saw it (``seen``) or covered it and found nothing."""

    day: str
    seen: bool


def looks(seen_days: Iterable[str], covered_days: Iterable[str]) -> list[Look]:
    """The looks at one site in day order; a day with any sighting is a sighting."""
    seen = set(seen_days)
    return [Look(d, d in seen) for d in sorted(seen | set(covered_days))]


def fold_status(history: Iterable[Look], *, before: str | None = None) -> tuple[str, str] | None:
    """(status, day it began) after the looks (only those before day ``before`` when given); None when
    the site had not been seen yet. See the module notes for the rule."""
    status: str | None = None
    since = ""
    for look in history:
        if before is not None and look.day >= before:
            break
        if status is None:
            if look.seen:
                status, since = NEW, look.day
        elif look.seen:
            if status == GONE:
                status, since = RETURNED, look.day
            elif status in (NEW, RETURNED):
                status, since = PERSISTING, look.day
        elif status != GONE:
            status, since = GONE, look.day
    return None if status is None else (status, since)


def union_classes(values: Iterable[object]) -> str:
    """Comma-separated classes in CLASSES order from several ``classes`` strings."""
    found: set[str] = set()
    for v in values:
        if isinstance(v, str) and v:
            found.update(x.strip() for x in v.split(","))
    return ",".join(c for c in CLASSES if c in found)


# ---------------------------------------------------------------- diff
APPEARED, VANISHED, PERSISTED = "appeared", "vanished", "persisted"


def diff_kind(history: Sequence[Look], since_day: str) -> str | None:
    """How a site changed between just before ``since_day`` and now: ``appeared`` (not there before, there
    now: new or returned), ``vanished`` (there before, gone now), ``persisted`` (there before and still
    there, seen again on or after ``since_day``), or None (no change worth reporting)."""
    before = fold_status(history, before=since_day)
    now = fold_status(history)
    present_before = before is not None and before[0] != GONE
    if now is None:
        return None
    present_now = now[0] != GONE
    if present_now and not present_before:
        return APPEARED
    if present_before and not present_now:
        return VANISHED
    if present_before and present_now and any(lk.seen and lk.day >= since_day for lk in history):
        return PERSISTED
    return None
