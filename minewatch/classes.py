"""The classes minewatch recognises: the one place they are defined.

Tiles are multi-label: one tile can carry several classes or none.
"""

from __future__ import annotations

CLASS_DESCRIPTIONS: dict[str, str] = {
    "container_farm": (
        "ISO shipping containers (20 ft or 40 ft) set in regular rows with aisles, as mining farms place "
        "them; stacked, multi-coloured container yards are look-alikes, not this class."
    ),
    "cooling_array": (
        "Forced-air or evaporative cooling at mining scale: fan arrays on container ends or rooftops and "
        "evaporative cooling walls; a few small HVAC boxes on a warehouse roof are not this class."
    ),
    "heat_signature": (
        "A moderate, sustained thermal excess over the local background (about 5-30 K at drone "
        "resolution) with the footprint of a running farm; small, very hot stacks are not this class."
    ),
}

CLASSES: tuple[str, ...] = tuple(CLASS_DESCRIPTIONS)

# Truth-only label for things an analyst must not be sent to (container yards, solar farms, ...).
LOOKALIKE = "lookalike"

# What the dense head (when a model has one) marks per pixel, and the truth class each is drawn from.
MASK_DESCRIPTIONS: dict[str, str] = {
    "container": (
        "Container bodies: the roofs of the ISO containers of a container farm (from container_farm truth, one "
        "body per container, gaps between containers left out), so their area counts containers."
    ),
    "cooling": "Fan banks and evaporative walls (from cooling_array truth).",
    "heat": (
        "The warm footprint of a running farm (from heat_signature truth the sensor can see); only where "
        "thermal imagery exists."
    ),
}
MASK_NAMES: tuple[str, ...] = tuple(MASK_DESCRIPTIONS)
MASK_TRUTH_CLASS: dict[str, str] = {"container": "container_farm", "cooling": "cooling_array",
                                    "heat": "heat_signature"}

# Truth-only label for ground whose content nobody knows yet (a candidate site without an analyst's verdict):
# windows touching it are left out of training rather than taught as background.
UNLABELLED = "unlabelled"
