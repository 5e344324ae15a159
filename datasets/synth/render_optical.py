"""Optical rendering: land cover, objects with surface patterns, cast shadows, atmosphere, sensor.

Id maps (cover, part, shadow) are rasterised once for the whole scene in compact integer types;
everything in floating point happens in strips of rows (float32), so memory stays bounded and the
arithmetic stays in cache. Output is DNs in the profile's dtype.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import shapely
from affine import Affine
from rasterio.features import rasterize
from scipy import ndimage

from minewatch.datasets.synth import match
from minewatch.datasets.synth.appearance import rust_threshold
from minewatch.datasets.synth.match import Match
from minewatch.datasets.synth.noise import Textures, make_textures
from minewatch.datasets.synth.objects import Layer, Part, Tex
from minewatch.datasets.synth.plan import ScenePlan

BAND_INDEX = {"red": 0, "green": 1, "blue": 2, "nir": 3}
STRIP_ROWS = 256
RUST_EDGE = 2.0  # rust patch edge sharpness (per unit of texture level)
RUST_MID, RUST_GRAIN = 0.7, 0.7  # rust patches: metre-scale blotches broken up by pixel-scale speckle
RUST_MAX = 0.8  # paint still shows through the worst rust
DIRT_STEP_M = 0.1  # dirt streak pattern: one texture cell per this many metres along the part
DIRT_DARKENING = 0.45  # darkening of the dirtiest streak at dirt 1
WALL_MIN_M = 1.0  # structures at least this tall show a wall when seen off nadir
MS_BLUR = 2.0  # pansharpening: the colour bands are this many times blurrier than the ringing's width


@dataclass
class PartTable:
    """Per-part attributes indexed by part id (0 = no part)."""

    refl: np.ndarray  # (n+1, 4)
    height: np.ndarray
    qheight: np.ndarray  # int16, height in quarter metres (shadow tests)
    tex: np.ndarray
    cos: np.ndarray
    sin: np.ndarray
    cu: np.ndarray
    cv: np.ndarray
    hl: np.ndarray
    hw: np.ndarray
    period: np.ndarray
    solar: np.ndarray
    heat: np.ndarray
    snow_free: np.ndarray
    contrast: np.ndarray
    rust_thr: np.ndarray  # level of the part's rust texture above which it is rust (inf: no rust)
    dirt: np.ndarray


def part_table(parts: list[Part]) -> PartTable:
    n = len(parts) + 1
    refl = np.zeros((n, 4), np.float32)
    f = {k: np.zeros(n, np.float32) for k in ("height", "cos", "sin", "cu", "cv", "hl", "hw", "period", "solar",
                                                "heat", "contrast", "rust", "dirt")}
    tex = np.zeros(n, np.uint8)
    snow_free = np.zeros(n, bool)
    f["cos"][0] = 1.0
    for i, p in enumerate(parts, start=1):
        refl[i] = p.refl
        c, s = math.cos(p.angle), math.sin(p.angle)
        xy = shapely.get_coordinates(p.geom.exterior)
        cen = xy[:-1].mean(axis=0)
        d = xy - cen
        a = d[:, 0] * c + d[:, 1] * s
        b = -d[:, 0] * s + d[:, 1] * c
        f["height"][i], f["cos"][i], f["sin"][i] = p.height_m, c, s
        f["cu"][i], f["cv"][i] = cen
        f["hl"][i], f["hw"][i] = max(np.abs(a).max(), 1e-3), max(np.abs(b).max(), 1e-3)
        f["period"][i], f["solar"][i], f["heat"][i] = p.period_m, p.solar_k, p.heat_k
        f["contrast"][i], f["rust"][i], f["dirt"][i] = p.contrast, p.rust, p.dirt
        tex[i] = int(p.texture)
        snow_free[i] = p.snow_free
    qh = np.clip(np.round(f["height"] * 4), 0, 255).astype(np.int16)
    return PartTable(refl, f["height"], qh, tex, f["cos"], f["sin"], f["cu"], f["cv"], f["hl"], f["hw"],
                     f["period"], f["solar"], f["heat"], snow_free, f["contrast"], rust_threshold(f["rust"]),
                     f["dirt"])


def rasterize_parts(parts: list[Part], transform: Affine, shape: tuple[int, int]) -> np.ndarray:
    """Ids (index + 1) of the top visible part per pixel; later parts cover earlier ones."""
    shapes = [(p.geom, i + 1) for i, p in enumerate(parts) if p.optical]
    if not shapes:
        return np.zeros(shape, np.uint16)
    return rasterize(shapes, out_shape=shape, transform=transform, fill=0, dtype="uint16")


def shadow_shapes(parts: list[Part], shadow_per_m: tuple[float, float]) -> list[tuple[object, int]]:
    """Shadow polygons (caster footprint swept away from the sun by its height above the surface it stands
    on) valued by caster height (1/4 m)."""
    out = []
    step = np.array(shadow_per_m)
    for p in parts:
        if not p.optical or p.height_m < 0.3:
            continue
        xy = shapely.get_coordinates(p.geom.exterior)
        if p.texture == Tex.CROWN:
            # a crown from ~40 % of the height up casts a detached disc, joined by a thin trunk shadow
            base = xy.mean(axis=0)
            low, high = step * p.height_m * 0.4, step * p.height_m * 0.95
            crown = shapely.convex_hull(shapely.multipoints(np.vstack([xy + low, xy + high])))
            trunk = shapely.LineString([base, base + low]).buffer(0.15)
            hull = shapely.union(crown, trunk)
        else:
            # equipment on a roof shades the roof it stands on: its shadow is as long as it is tall above it
            hull = shapely.convex_hull(shapely.multipoints(np.vstack([xy, xy + step * (p.height_m - p.base_m)])))
        out.append((p.height_m, hull))
    out.sort(key=lambda t: t[0])
    return [(g, int(min(255, round(h * 4)))) for h, g in out]


def leaned_parts(parts: list[Part], lean_per_m: tuple[float, float], wall_light: float) -> list[Part]:
    """The parts as an off-nadir sensor sees them: every raised surface moved by its height times
    ``lean_per_m`` (away from the sensor), and before each structure its wall facing the sensor (the hull
    of its base and its moved top, ``wall_light`` times as bright as the roof). Ground parts stay put; the
    truth (the footprint) does not move."""
    du, dv = lean_per_m
    out: list[Part] = []
    for p in parts:
        if not p.optical or p.height_m <= 0:
            out.append(p)
            continue
        top = shapely.transform(p.geom, lambda xy, h=p.height_m: xy + np.array([du * h, dv * h]))
        if p.layer == Layer.STRUCTURE and p.texture != Tex.CROWN and p.height_m - p.base_m >= WALL_MIN_M:
            base = shapely.transform(p.geom, lambda xy, h=p.base_m: xy + np.array([du * h, dv * h]))
            wall = shapely.convex_hull(shapely.union(base, top))
            out.append(replace(p, geom=wall, refl=(p.refl * np.float32(wall_light)).astype(np.float32),
                               texture=Tex.FLAT, rust=0.0, dirt=0.0))
        out.append(replace(p, geom=top))
    return out


def rasterize_shadows(shapes: list, transform: Affine, shape: tuple[int, int]) -> np.ndarray:
    if not shapes:
        return np.zeros(shape, np.uint8)
    return rasterize(shapes, out_shape=shape, transform=transform, fill=0, dtype="uint8")


def _object_factor(t: np.ndarray, a: np.ndarray, b: np.ndarray, p: np.ndarray, pt: PartTable, plan: ScenePlan,
                   grain: np.ndarray, mid: np.ndarray, crown: np.ndarray) -> np.ndarray:
    """Brightness factor of object pixels from their surface pattern (vectorised per texture)."""
    f = np.ones(len(t), np.float32)
    su, sv = plan.sun_uv
    elev = math.radians(plan.when.sun_elevation_deg)
    hl, hw, per, con = pt.hl[p], pt.hw[p], pt.period[p], pt.contrast[p]
    gsd = plan.gsd_m
    for code in np.unique(t):
        s = t == code
        aa, bb = a[s], b[s]
        if code == Tex.RIBS:
            v = 1 + 0.07 * con[s] * np.sin(2 * np.pi * aa / np.maximum(per[s], 2.5 * gsd))
            rim = (np.abs(aa) > hl[s] - 0.15) | (np.abs(bb) > hw[s] - 0.15)
            f[s] = np.where(rim, 0.82, v) * (1 + 0.03 * grain[s])
        elif code == Tex.GABLE:
            face = np.sign(bb)
            c, si = pt.cos[p[s]], pt.sin[p[s]]
            lit = face * (-si * su + c * sv)
            v = 1 + plan.recipe.illumination.roof_shading * 2 * lit
            v = np.where(np.abs(bb) < 0.15, v * 1.1, v)
            v = np.where(np.abs(bb) > hw[s] - 0.2, v * 0.85, v)
            f[s] = v * (1 + 0.05 * grain[s])
        elif code == Tex.FAN:
            rr = np.hypot(aa, bb) / np.maximum(hl[s], 1e-3)
            blades = 0.8 + 0.4 * np.cos(5 * np.arctan2(bb, aa))
            c = con[s]
            f[s] = 1 + c * (np.where(rr > 0.75, 3.5, np.where(rr < 0.25, 2.6, blades)) - 1)
        elif code == Tex.GLASS:
            ph = aa / per[s]
            frac = ph - np.floor(ph)
            tri = np.abs(frac - 0.5) * 2
            c, si = pt.cos[p[s]], pt.sin[p[s]]
            facing = np.where(frac < 0.5, 1.0, -1.0) * (c * su + si * sv)
            v = (0.85 + 0.25 * tri) * (1 + 0.2 * facing)
            bars = (np.abs(bb) % 3.0) < max(0.12, gsd * 0.6)
            f[s] = np.where(bars, v * 1.25, v) * (1 + 0.04 * grain[s])
        elif code == Tex.SOLAR:
            ph = aa / per[s]
            frame = (ph - np.floor(ph) < max(0.05, 0.5 * gsd / 1.0)) | (np.abs(bb) > hw[s] - 0.06) | (
                np.abs(bb) < 0.04)
            f[s] = np.where(frame, 3.5, 1.0 + 0.05 * grain[s])
        elif code == Tex.GRAVEL:
            f[s] = 1 + 0.07 * mid[s] + 0.09 * grain[s]
        elif code == Tex.PAD:
            # slats finer than the pixel average out: the swing fades below 2.5 pixels per slat
            slat = np.maximum(per[s], 2.5 * gsd)
            amp = 0.15 * con[s] * np.clip((per[s] / gsd - 1.2) / 1.3, 0.25, 1)
            v = 1 - amp + amp * np.sin(2 * np.pi * aa / slat)
            edge = (np.abs(bb) > hw[s] - 0.12) | (np.abs(aa) > hl[s] - 0.12)
            f[s] = np.where(edge, 1.6, v) * (1 + 0.1 * mid[s])
        elif code == Tex.CROWN:
            r = np.maximum(hl[s], 0.3)
            nx, ny = aa / r, bb / r
            rr2 = np.minimum(nx * nx + ny * ny, 1.0)
            nz = np.sqrt(1 - rr2)
            lam = (nx * su + ny * sv) * math.cos(elev) + nz * math.sin(elev)
            v = 0.35 + 0.9 * np.clip(lam, 0, 1)
            f[s] = v * (0.55 + 0.45 * crown[s])
        elif code == Tex.FINS:
            f[s] = 1 + 0.18 * np.sin(2 * np.pi * aa / np.maximum(per[s], 2.5 * gsd))
        elif code == Tex.CAR:
            rel = aa / np.maximum(hl[s], 1e-3)
            glass = ((rel > 0.15) & (rel < 0.42)) | ((rel < -0.5) & (rel > -0.72))
            v = np.where(glass, 0.25, 1.0)
            f[s] = np.where(np.abs(bb) > hw[s] - 0.12, v * 0.8, v)
        elif code == Tex.BOAT:
            # a hull narrowing to the bow (+a end: the polygon is already pointed), a darker cockpit and deck line
            rel = aa / np.maximum(hl[s], 1e-3)
            width = np.abs(bb) / np.maximum(hw[s], 1e-3)
            cabin = (rel > -0.45) & (rel < 0.15) & (width < 0.6)
            v = np.where(cabin, 0.75 + 0.25 * con[s], 1.0)
            f[s] = np.where(width > 0.82, v * 0.85, v) * (1 + 0.03 * grain[s])
        elif code == Tex.BUS:
            # a long roof: rim, a dark articulation band where period_m > 0 marks it, hatches
            rim = np.abs(bb) > hw[s] - 0.1
            joint = (per[s] > 0) & (np.abs(aa - per[s] + hl[s]) < 0.45)
            hatch = (np.abs(bb) < 0.45) & (np.abs(((aa + hl[s]) % 4.0) - 2.0) < 0.4)
            v = np.where(joint, 0.35, np.where(hatch, 0.85, 1.0))
            f[s] = np.where(rim, v * 0.85, v) * (1 + 0.02 * grain[s])
        else:
            f[s] = 1 + 0.03 * grain[s]
    return f


def _wear(refl: np.ndarray, sel: np.ndarray, iy: np.ndarray, ix: np.ndarray, row0: int, col0: int, p: np.ndarray,
          a: np.ndarray, fac: np.ndarray, pt: PartTable, tx: Textures, plan: ScenePlan) -> None:
    """Rust patches (blotches of the mid texture at a per-part offset) and dark dirt streaks along the
    corrugation (a pattern that varies along the part's axis only), in place on ``refl``."""
    ps, y, x = p[sel], iy[sel], ix[sel]
    n = tx.mid.shape[0]
    off = (ps.astype(np.int64) * 7919) % n
    ty, tx_ = (y + row0 + off) % n, (x + col0 + 3 * off) % n
    blot = RUST_MID * tx.mid[ty, tx_] + RUST_GRAIN * tx.grain[ty, tx_]  # patches with ragged, speckled edges
    m = np.clip((blot - pt.rust_thr[ps]) * RUST_EDGE, 0, RUST_MAX)
    streak_idx = (np.floor(a[sel] / DIRT_STEP_M).astype(np.int64) + off) % n
    streak = np.clip(tx.mid[off, streak_idx], 0, 2) / 2
    keep = 1 - DIRT_DARKENING * pt.dirt[ps] * streak
    rust = np.asarray(plan.recipe.appearance.rust_colour, np.float32)
    for band in range(4):
        v = refl[band][y, x]
        refl[band][y, x] = (v * (1 - m) + rust[band] * fac[sel] * m) * keep


class OpticalRenderer:
    """Renders strips of the optical raster of a plan."""

    def __init__(self, plan: ScenePlan) -> None:
        self.plan = plan
        h, w, gsd = plan.height, plan.width, plan.gsd_m
        self.bands = [BAND_INDEX[b] for b in plan.profile.optical.bands]
        local = Affine(gsd, 0, 0, 0, gsd, 0)
        self.cover = plan.landcover.cover.arrays()
        self.cover_ids = plan.landcover.cover_map(local, (h, w)) if plan.background is None else None
        eff = plan.effects
        # Off nadir, raised surfaces lean (what is drawn); shadows stay where the sun casts them.
        seen = leaned_parts(plan.parts, eff.lean_per_m, plan.look.wall_light) if eff.view_angle_deg > 0 \
            else plan.parts
        self.pt = part_table(seen)
        self.part_ids = rasterize_parts(seen, local, (h, w))
        self.shadow = rasterize_shadows(shadow_shapes(plan.parts, plan.shadow_per_m), local, (h, w))
        # rows read beyond a strip for its blur (and the pansharpening kernel)
        self.halo = 1 + (math.ceil(3 * MS_BLUR * eff.sharpen_sigma_px) if eff.sharpen > 0 else 0)
        rng = np.random.default_rng([plan.seed, 11])
        illum = plan.recipe.illumination
        self.tex: Textures = make_textures(rng, gsd, plan.recipe.landcover.crown_size_m, plan.sun_uv,
                                           illum.tree_relief, n=1024 if max(h, w) > 512 else 512)
        self.valid = None
        self.bg = None
        self.match: Match | None = None
        if plan.background is not None:
            self.bg, self.valid = plan.background.canvas()
            self.match = plan.background.match
        elif plan.valid is not None:
            self.valid = rasterize([(plan.valid, 1)], out_shape=(h, w), transform=local, fill=0,
                                   dtype="uint8").astype(bool)

    def strips(self) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, DN array (bands, rows, width)) for each strip of STRIP_ROWS rows."""
        for i, r0 in enumerate(range(0, self.plan.height, STRIP_ROWS)):
            r1 = min(self.plan.height, r0 + STRIP_ROWS)
            yield r0, self.strip(r0, r1, i)

    def ground(self, rows: np.ndarray, cols: np.ndarray, us: np.ndarray, vs: np.ndarray) -> np.ndarray:
        """Land-cover reflectance (4, h, w)."""
        plan, lc, ct, tx = self.plan, self.plan.landcover, self.cover, self.tex
        rr0, rr1 = rows[0], rows[-1] + 1
        if self.bg is not None:
            return self.bg[:, rr0:rr1].copy()
        cid = self.cover_ids[rr0:rr1]
        spec = plan.recipe.landcover
        grain = tx.take(tx.grain, rows, cols)
        mod = 1 + spec.mottle_amplitude * lc.mottle.sample(us, vs)
        mod += spec.grain_amplitude * ct["grain"][cid] * grain
        ramp = ct["ramp"][cid]
        proj = us[None, :] * ct["rcos"][cid] + vs[:, None] * ct["rsin"][cid]
        per = np.maximum(ct["rper"][cid], 2.2 * plan.gsd_m)
        fade = np.clip(ct["rper"][cid] / (3 * plan.gsd_m), 0, 1)
        mod *= 1 + ramp * fade * np.sin(2 * np.pi * proj / per)
        tper = ct["tper"][cid]
        tph = proj / tper
        tfrac = (tph - np.floor(tph)) * tper
        mod *= 1 - ct["tamp"][cid] * ((tfrac < 0.45) | ((tfrac > 1.9) & (tfrac < 2.35)))
        refl = np.empty((4, len(rows), len(cols)), np.float32)
        for b in range(4):
            refl[b] = ct["refl"][:, b][cid] * mod
        exempt = ct["exempt"][cid]
        fs = lc.forest_strength(us, vs)
        if fs is not None:
            crown_raw = tx.take(tx.crown_raw, rows, cols)
            forest = (fs + 0.12 * crown_raw > 0) & ~exempt
            if forest.any():
                shade = tx.take(tx.crown, rows, cols)[forest]
                gap = np.where(crown_raw[forest] < -1.0, 0.45, 1.0)
                for b in range(4):
                    refl[b][forest] = lc.forest_refl[b] * shade * gap * (1 + 0.1 * grain[forest])
        ws = lc.water_strength(us, vs)
        if ws is not None:
            water = (ws > 0) & ~exempt
            shore = (ws > -0.12) & ~water & ~exempt
            for b in range(4):
                refl[b][shore] *= 0.75
                refl[b][water] = lc.water_refl[b] * (1 + 0.04 * grain[water])
        return refl

    def paint_objects(self, refl: np.ndarray, pid: np.ndarray, row0: int, col0: int, us: np.ndarray,
                      vs: np.ndarray) -> None:
        """Draw the parts (ids ``pid`` of a window starting at ``row0``, ``col0``; local coordinates
        ``us`` of its columns and ``vs`` of its rows) into ``refl`` (4, rows, cols), in place."""
        plan, pt, tx = self.plan, self.pt, self.tex
        iy, ix = np.nonzero(pid)
        if not len(iy):
            return
        p = pid[iy, ix]
        du = us[ix] - pt.cu[p]
        dv = vs[iy] - pt.cv[p]
        a = du * pt.cos[p] + dv * pt.sin[p]
        b = -du * pt.sin[p] + dv * pt.cos[p]
        n = tx.grain.shape[0]
        ty, tx_ = (iy + row0) % n, (ix + col0) % n
        fac = _object_factor(pt.tex[p], a, b, p, pt, plan, tx.grain[ty, tx_], tx.mid[ty, tx_], tx.crown[ty, tx_])
        for band in range(4):
            refl[band][iy, ix] = pt.refl[p, band] * fac
        worn = np.isfinite(pt.rust_thr[p]) | (pt.dirt[p] > 0)
        if worn.any():
            _wear(refl, np.nonzero(worn)[0], iy, ix, row0, col0, p, a, fac, pt, tx, plan)

    def strip(self, r0: int, r1: int, index: int) -> np.ndarray:
        if self.match is not None:
            return self.pasted_strip(r0, r1, index)
        plan, look = self.plan, self.plan.look
        gsd, w = plan.gsd_m, plan.width
        rr0, rr1 = max(0, r0 - self.halo), min(plan.height, r1 + self.halo)
        rows = np.arange(rr0, rr1)
        cols = np.arange(w)
        us = ((cols + 0.5) * gsd).astype(np.float32)
        vs = ((rows + 0.5) * gsd).astype(np.float32)
        refl = self.ground(rows, cols, us, vs)
        pt = self.pt
        pid = self.part_ids[rr0:rr1]
        self.paint_objects(refl, pid, rr0, 0, us, vs)
        # cast shadows: a pixel is shaded when a taller caster's shadow covers it
        sh = self.shadow[rr0:rr1]
        shaded = sh > pt.qheight[pid] + 2  # half a metre: roof items do not shade their own roof
        light = plan.recipe.illumination.shadow_light
        if shaded.any():
            for band in range(4):
                refl[band][shaded] *= light[band]
        atm = plan.atmos
        op_shadow = atm.opacity(us, vs, shifted=True)
        if op_shadow is not None:
            refl *= 1 - (1 - atm.cloud_shadow_light) * op_shadow
        refl += atm.haze * atm.haze_colour[:, None, None]
        if look.clouds_in_view:
            op = atm.opacity(us, vs, shifted=False)
            if op is not None:
                mid_s = self.tex.take(self.tex.mid, rows, cols)
                refl = refl * (1 - op) + (atm.cloud_refl * (1 + 0.06 * mid_s)) * op
        refl = refl[self.bands]
        if look.blur > 0:
            refl = _blur(refl, look.blur)
        if plan.effects.sharpen > 0:
            refl = pansharpened(refl, plan.effects.sharpen, plan.effects.sharpen_sigma_px)
        refl = refl[:, r0 - rr0: r0 - rr0 + (r1 - r0)]
        rng = np.random.default_rng([plan.seed, 23, index])
        if look.noise > 0:
            noise = rng.standard_normal(refl.shape, dtype=np.float32)
            refl += look.noise * noise * (0.5 + np.sqrt(np.maximum(refl, 0)))
        disp = _knee(refl * np.float32(plan.exposure))
        if look.gamma != 1.0:
            disp = disp ** np.float32(1 / look.gamma)
        if plan.effects.quant_bits:
            disp = quantised(disp, plan.effects.quant_bits)
        return self._to_dn(disp, r0, r1)

    def pasted_strip(self, r0: int, r1: int, index: int) -> np.ndarray:
        """A strip over a real background: the background as it is, with the objects pasted on it in its
        tone and colour cast, blurred by its point-spread function, with its noise and a soft alpha, and
        their shadows darkening the real pixels (see :mod:`minewatch.datasets.synth.match`)."""
        look = self.plan.look
        if look.over_backgrounds:
            return self._sensed_strip(r0, r1, index)
        refl = self._composite(r0, r1, index)[self.bands]
        if look.gamma != 1.0:
            refl = np.maximum(refl, 0) ** np.float32(1 / look.gamma)
        return self._to_dn(refl, r0, r1)

    def _composite(self, r0: int, r1: int, index: int) -> np.ndarray:
        """Rows r0:r1 of the background with the objects and their shadows pasted (4 bands, linear)."""
        plan, m = self.plan, self.match
        assert m is not None and self.bg is not None
        halo = math.ceil(3 * m.soft_px) + 2
        rr0, rr1 = max(0, r0 - halo), min(plan.height, r1 + halo)
        out = self.bg[:, r0:r1].copy()
        pid = self.part_ids[rr0:rr1]
        shaded = self.shadow[rr0:rr1] > self.pt.qheight[pid] + 2
        touched = np.flatnonzero(((pid > 0) | shaded).any(axis=0))
        if len(touched):
            c0, c1 = max(0, int(touched[0]) - halo), min(plan.width, int(touched[-1]) + 1 + halo)
            out[:, :, c0:c1] = self._paste(rr0, rr1, c0, c1, index)[:, r0 - rr0:r1 - rr0]
        return out

    def _sensed_strip(self, r0: int, r1: int, index: int) -> np.ndarray:
        """A pasted strip seen through the sensor (``over_backgrounds``): the whole composite, real background
        included, gets the scene's haze, the look's blur, pansharpening, noise and quantisation."""
        plan, look, eff = self.plan, self.plan.look, self.plan.effects
        a0, a1 = max(0, r0 - self.halo), min(plan.height, r1 + self.halo)
        refl = self._composite(a0, a1, index)
        refl += plan.atmos.haze * plan.atmos.haze_colour[:, None, None]
        refl = refl[self.bands]
        if look.blur > 0:
            refl = _blur(refl, look.blur)
        if eff.sharpen > 0:
            refl = pansharpened(refl, eff.sharpen, eff.sharpen_sigma_px)
        refl = refl[:, r0 - a0:r1 - a0]
        if look.noise > 0:
            rng = np.random.default_rng([plan.seed, 37, index])
            refl += look.noise * rng.standard_normal(refl.shape, dtype=np.float32) * (
                0.5 + np.sqrt(np.maximum(refl, 0)))
        disp = _knee(refl)
        if look.gamma != 1.0:
            disp = disp ** np.float32(1 / look.gamma)
        if eff.quant_bits:
            disp = quantised(disp, eff.quant_bits)
        return self._to_dn(disp, r0, r1)

    def _paste(self, rr0: int, rr1: int, c0: int, c1: int, index: int) -> np.ndarray:
        """Rows rr0:rr1, columns c0:c1 of the background with the objects and shadows composited."""
        plan, m, gsd = self.plan, self.match, self.plan.gsd_m
        assert m is not None and self.bg is not None
        us = ((np.arange(c0, c1) + 0.5) * gsd).astype(np.float32)
        vs = ((np.arange(rr0, rr1) + 0.5) * gsd).astype(np.float32)
        pid = self.part_ids[rr0:rr1, c0:c1]
        shaded = self.shadow[rr0:rr1, c0:c1] > self.pt.qheight[pid] + 2
        obj = np.zeros((4, rr1 - rr0, c1 - c0), np.float32)
        self.paint_objects(obj, pid, rr0, c0, us, vs)
        alpha = (pid > 0).astype(np.float32)
        light = np.ones_like(obj)
        shadow_light = np.asarray(plan.recipe.illumination.shadow_light, np.float32)
        for band in range(4):
            obj[band][shaded] *= shadow_light[band]  # objects in the shade of taller ones
            light[band][shaded & (pid == 0)] = shadow_light[band]  # shadows on the real ground
        obj = _knee(obj * m.gain[:, None, None])
        sigma = m.soft_px
        a_b = match.blur(alpha, sigma)
        res = match.blur(obj * alpha, sigma) + (1 - a_b) * self.bg[:, rr0:rr1, c0:c1] * match.blur(light, sigma)
        if m.noise > 0:
            rng = np.random.default_rng([plan.seed, 29, index, c0])
            grain = match.blur(rng.standard_normal(alpha.shape, dtype=np.float32), sigma) * np.float32(m.noise) * a_b
            if m.display:
                res = match.to_linear(match.to_display(res) + grain)
            else:
                res = res + grain
        return res.astype(np.float32)

    def _to_dn(self, disp: np.ndarray, r0: int, r1: int) -> np.ndarray:
        opt = self.plan.profile.optical
        dtype = np.dtype(opt.dtype)
        hi = np.iinfo(dtype).max if dtype.kind in "ui" else np.inf
        dn = (disp - opt.offset) / opt.scale
        lo = 1 if opt.nodata is not None and opt.nodata == 0 else 0
        if dtype.kind in "ui":
            dn = np.clip(np.rint(dn), lo, hi).astype(dtype)
        else:
            dn = dn.astype(dtype)
        if self.valid is not None and opt.nodata is not None:
            inval = ~self.valid[r0:r1]
            dn[:, inval] = opt.nodata
        return dn


def pansharpened(refl: np.ndarray, amount: float, sigma_px: float) -> np.ndarray:
    """What pansharpening leaves in (bands, rows, cols) reflectance: colour as blurry as the multispectral
    bands (``MS_BLUR`` x ``sigma_px``), brightness from the sharp panchromatic band, and ringing, an
    overshoot of ``amount`` at every edge (bright halos round dark roofs, dark ones round bright)."""
    sig = float(sigma_px)
    pan = refl.mean(axis=0)
    pan_low = ndimage.gaussian_filter(pan, MS_BLUR * sig, mode="nearest")
    colour = ndimage.gaussian_filter(refl, (0, MS_BLUR * sig, MS_BLUR * sig), mode="nearest")
    ringing = pan + np.float32(amount) * (pan - ndimage.gaussian_filter(pan, sig, mode="nearest"))
    return (colour * (ringing / np.maximum(pan_low, np.float32(1e-3)))[None]).astype(np.float32)


def quantised(x: np.ndarray, bits: int) -> np.ndarray:
    """Reflectance as a ``bits``-bit sensor records it (full scale = reflectance 1)."""
    levels = np.float32(2**bits - 1)
    return (np.round(np.clip(x, 0, 1) * levels) / levels).astype(np.float32)


def _knee(x: np.ndarray, start: float = 0.8) -> np.ndarray:
    """Linear up to ``start``, then a soft shoulder towards 1 (highlights keep some texture)."""
    x = np.maximum(x, 0)
    room = np.float32(1 - start)
    over = np.maximum(x - np.float32(start), 0)
    return np.where(x < start, x, np.float32(start) + room * (1 - np.exp(-over / room))).astype(np.float32)


def _blur(x: np.ndarray, wgt: float) -> np.ndarray:
    """3-tap separable blur [w, 1-2w, w] (edges kept)."""
    c = np.float32(1 - 2 * wgt)
    e = np.float32(wgt)
    y = x.copy()
    y[:, 1:-1] = c * x[:, 1:-1] + e * (x[:, :-2] + x[:, 2:])
    z = y.copy()
    z[:, :, 1:-1] = c * y[:, :, 1:-1] + e * (y[:, :, :-2] + y[:, :, 2:])
    return z
