"""Where and when: location, UTM zone, acquisition time, sun position, and the local metric frame.

The generator works in a local frame: ``u`` metres east and ``v`` metres south of the scene's
top-left corner. :class:`Frame` maps it to the output CRS with one affine transform, so rasters,
truth and rasterisation agree exactly.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
from affine import Affine
from pyproj import CRS as ProjCRS
from pyproj import Transformer
from rasterio.crs import CRS

from minewatch.datasets.crs import utm_epsg
from minewatch.datasets.synth.objects import uni
from minewatch.datasets.synth.recipe import Region, SceneSpec, Season


@dataclass(frozen=True)
class Frame:
    """Local metric frame -> output CRS: ``crs_xy = affine * (u, v)``."""

    crs: CRS
    affine: Affine
    lon: float
    lat: float

    def grid_transform(self, origin_u: float, origin_v: float, step_m: float) -> Affine:
        """Geotransform of a north-up grid whose pixels are ``step_m`` metres, top-left at (u, v)."""
        return self.affine * Affine.translation(origin_u, origin_v) * Affine.scale(step_m)

    def to_crs(self, uv: np.ndarray) -> np.ndarray:
        a = self.affine
        u, v = uv[:, 0], uv[:, 1]
        return np.column_stack([a.a * u + a.b * v + a.c, a.d * u + a.e * v + a.f])

    def to_lonlat(self, uv: np.ndarray) -> np.ndarray:
        xy = self.to_crs(uv)
        tr = Transformer.from_crs(self.crs, "EPSG:4326", always_xy=True)
        lon, lat = tr.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([lon, lat])


def pick_region(rng: np.random.Generator, regions: list[Region]) -> Region:
    w = np.array([r.weight for r in regions], dtype=float)
    return regions[int(rng.choice(len(regions), p=w / w.sum()))]


def utm_frame(lon: float, lat: float, width_m: float, height_m: float) -> Frame:
    """A UTM frame whose top-left corner sits so that (lon, lat) is the scene centre (whole metres)."""
    epsg = utm_epsg(lon, lat)
    tr = Transformer.from_crs("EPSG:4326", ProjCRS.from_epsg(epsg), always_xy=True)
    x, y = tr.transform(lon, lat)
    x0 = float(round(x - width_m / 2))
    y0 = float(round(y + height_m / 2))
    return Frame(CRS.from_epsg(epsg), Affine(1.0, 0.0, x0, 0.0, -1.0, y0), lon, lat)


def season_of(date: dt.date, lat: float) -> str:
    """Meteorological season, flipped south of the equator; near the equator it is always summer-like."""
    m = date.month
    north = {12: "winter", 1: "winter", 2: "winter", 3: "spring", 4: "spring", 5: "spring",
             6: "summer", 7: "summer", 8: "summer", 9: "autumn", 10: "autumn", 11: "autumn"}[m]
    if abs(lat) < 15:
        return "summer" if m in (3, 4, 5, 9, 10, 11) else "autumn"
    if lat < 0:
        return {"winter": "summer", "summer": "winter", "spring": "autumn", "autumn": "spring"}[north]
    return north


def sun_position(when: dt.datetime, lon: float, lat: float) -> tuple[float, float]:
    """Sun elevation and azimuth (degrees, azimuth clockwise from north) for a UTC time."""
    doy = when.timetuple().tm_yday
    hours = when.hour + when.minute / 60 + when.second / 3600
    g = 2 * math.pi / 365 * (doy - 1 + (hours - 12) / 24)
    decl = (0.006918 - 0.399912 * math.cos(g) + 0.070257 * math.sin(g) - 0.006758 * math.cos(2 * g)
            + 0.000907 * math.sin(2 * g) - 0.002697 * math.cos(3 * g) + 0.00148 * math.sin(3 * g))
    eqtime = 229.18 * (0.000075 + 0.001868 * math.cos(g) - 0.032077 * math.sin(g)
                       - 0.014615 * math.cos(2 * g) - 0.040849 * math.sin(2 * g))
    solar_min = hours * 60 + eqtime + 4 * lon
    ha = math.radians(solar_min / 4 - 180)
    phi = math.radians(lat)
    cos_z = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(ha)
    zen = math.acos(max(-1.0, min(1.0, cos_z)))
    elev = 90 - math.degrees(zen)
    az = math.degrees(math.atan2(math.sin(ha), math.cos(ha) * math.sin(phi) - math.tan(decl) * math.cos(phi)))
    return elev, (az + 180) % 360


@dataclass(frozen=True)
class When:
    acquired: dt.datetime  # UTC
    season: str
    sun_elevation_deg: float
    sun_azimuth_deg: float


def pick_time(rng: np.random.Generator, spec: SceneSpec, seasons: dict[str, Season], lon: float,
              lat: float) -> When:
    """A date and daytime with the sun high enough; seasons weighted by the recipe."""
    span = (spec.date_end - spec.date_start).days
    best: When | None = None
    for _ in range(24):
        date = spec.date_start + dt.timedelta(days=int(rng.integers(0, span + 1)))
        season = season_of(date, lat)
        weight = seasons[season].weight if season in seasons else 0.0
        if rng.random() > weight / max(s.weight for s in seasons.values()):
            continue
        solar_h = uni(rng, spec.local_solar_time_h)
        utc_h = (solar_h - lon / 15.0) % 24
        day_shift = math.floor((solar_h - lon / 15.0) / 24)
        when = dt.datetime(date.year, date.month, date.day, tzinfo=dt.timezone.utc) + dt.timedelta(
            days=day_shift, seconds=int(round(utc_h * 3600)))
        elev, az = sun_position(when, lon, lat)
        cand = When(when, season, elev, az)
        if elev >= spec.min_sun_elevation_deg:
            return cand
        if best is None or elev > best.sun_elevation_deg:
            best = cand
    if best is None:  # every draw rejected by season weight: fall back to local noon on the start date
        when = dt.datetime.combine(spec.date_start, dt.time(12), dt.timezone.utc) - dt.timedelta(hours=lon / 15)
        elev, az = sun_position(when, lon, lat)
        best = When(when, season_of(spec.date_start, lat), elev, az)
    return best


def iso_z(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
