"""How much electrical power a container farm draws: containers x miners per container x watts per miner.

The model (documented in the README, "Site power"):

    P = n_teu x miners_per_teu x kw_per_miner / 1000     [MW], 0 when thermal shows the farm idle

- ``n_teu``: containers in twenty-foot equivalents (TEU; a 40 ft container is 2), counted by the dense head from
  the area of container roof (:data:`TEU_M2` of roof per TEU, so 20 ft and 40 ft units need not be told apart).
- ``miners_per_teu``: air-cooled 40 ft mining containers are built for about 180-320 ASIC miners (the
  project's design figure, brief #18; 240 per 40 ft as the central figure); immersion 40 ft containers hold
  fewer (Minerbase: 720 kW of cooling is "approximately 1.7 times" the miners' draw at 3.5 kW per unit: ~120
  miners, 0.42 MW), so the low end is 130 per 40 ft (65 per TEU). Hydro-cooled 40 ft units are denser in
  power ("168+ units in a 40-foot container at 1,900 kW load", Uminers 2026 buyer's guide): this model
  under-reads them.
- ``kw_per_miner``: wall power of current SHA-256 ASICs at stock settings: Antminer S19 family 2.83-3.34 kW
  (Mining Store, "The definitive guide to Antminer S19 series"), S19 Pro 3.25 kW +-5 % (Bitmain's rating),
  ~3.5 kW per unit assumed by container makers (Minerbase immersion FAQ): 3.0-3.5 kW, central 3.25 kW.
- So one 40 ft container: 0.78 MW central, 0.39-1.12 MW (the design notes' 0.4-1.9 MW reaches up to dense
  hydro builds).
- Thermal cross-check: with thermal imagery, the median measured excess of the counted container roof over the
  open ground 5-15 m around the site (:func:`minewatch.infer.objects.roof_excess`). A running container's roof
  and exhaust warm it; a dormant one is at the ground's temperature or below. On generated scenes (67 farms,
  truth outlines) that excess was at most 1.1 K for dormant farms and at least -0.7 K (tenth percentile 1.5 K,
  median 3.8 K) for running ones, so a farm under :data:`RUNNING_EXCESS_K` is called idle: its estimate and low
  end are 0, its high end stays the capacity (what it draws when switched on). Without thermal around the site
  the farm is assumed to run and the figure is its capacity. A partly running farm reads as running.
- The range (``low``/``high``) multiplies the hardware range with the count's own uncertainty
  (:data:`COUNT_REL_ERROR`); the central figure uses the central values.

Sites without containers (warehouse halls, sheds) get no figure: fans and heat alone give no defensible number
of miners (the air flow of a fan bank depends on fan speed and the air's temperature rise, neither seen).
Cooling overhead (fans, controls: a few per cent) is left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

TEU_M2 = 6.06 * 2.44
"""Roof area of one twenty-foot container (14.79 m2); a 40 ft container (12.19 x 2.44 m) is 2.01 of them."""


@dataclass(frozen=True)
class Range:
    low: float
    central: float
    high: float


MINERS_PER_TEU = Range(65.0, 120.0, 160.0)
"""ASIC miners per TEU (130-320 per 40 ft mining container, immersion to dense air-cooled; 240 central)."""
KW_PER_MINER = Range(3.0, 3.25, 3.5)
"""Wall power of one ASIC miner, kW."""
COUNT_REL_ERROR = 0.2
"""Relative uncertainty of the container count (acceptance bound of the held-out evaluation: most farms are
counted within 20 %)."""
RUNNING_EXCESS_K = 1.2
"""A farm whose roof is less than this warmer than the ground around it is idle (with thermal), K."""


@dataclass(frozen=True)
class PowerEstimate:
    mw: float
    low: float
    high: float


def mw_per_teu(which: str = "central") -> float:
    return getattr(MINERS_PER_TEU, which) * getattr(KW_PER_MINER, which) / 1000.0


def is_running(roof_excess_k: float | None) -> bool | None:
    """Running (True), idle (False) or unknown (None: no thermal there) from the roof's measured excess over
    the ground around the site."""
    if roof_excess_k is None or not math.isfinite(roof_excess_k):
        return None
    return roof_excess_k >= RUNNING_EXCESS_K


def estimate_power(n_teu: float, running: bool | None = None) -> PowerEstimate:
    """Power drawn by ``n_teu`` containers (TEU): their capacity when ``running`` (or unknown: None), 0 (range 0
    to the capacity's high end) when idle; NaN for no containers."""
    if not (n_teu > 0) or not math.isfinite(n_teu):
        return PowerEstimate(math.nan, math.nan, math.nan)
    high = n_teu * (1 + COUNT_REL_ERROR) * mw_per_teu("high")
    if running is False:
        return PowerEstimate(mw=0.0, low=0.0, high=high)
    return PowerEstimate(mw=n_teu * mw_per_teu("central"), low=n_teu * (1 - COUNT_REL_ERROR) * mw_per_teu("low"),
                         high=high)
