"""Why a dense model's container counts miss: each held-out farm's count error beside how much of its container
roof the candidate sites cover, from the scans its model card made (``runs/dense/heldout-scans``).

A farm counted wrong (more than 20 % off, or missed) is one of three kinds:

- missed: no candidate touches it;
- partly covered: the candidates cover less than ``--cover`` of its container roof (the masks, or the windows,
  left part of the farm out);
- covered, miscounted: the roof is covered but the count from the mask's area is off (low or high).

Counts are the card's own (``heldout.json``: the best-IoU matching candidate's ``n_containers``, as ``minewatch
evaluate`` takes it); the roof cover is measured here from the card's scans.

Usage: python bench/count_failures.py [--run runs/dense] [--scans heldout-scans] [--cover 0.9]
Prints a Markdown table for BENCHMARKS.md ("Dense head").
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from minewatch.infer.object_eval import COUNT_TOLERANCE

ROOT = Path(__file__).resolve().parents[1]


def roof_cover(scene: Path, sites_path: Path) -> dict[str, float]:
    """Per truth farm of ``scene``: the share of its container roof that the candidate sites cover."""
    import shapely

    from minewatch.datasets.labels import read_truth
    from minewatch.datasets.vectors import read_vector

    sites = read_vector(sites_path, role="sites")
    union = shapely.union_all(sites.geometry.values)
    truth = read_truth(scene / "truth.geojson").to_crs(sites.crs)
    roofs = truth[truth["class"] == "container_farm"]
    return {str(site_id): float(shapely.area(shapely.intersection(union, roof)) / shapely.area(roof))
            for site_id, roof in ((k, shapely.union_all(g.geometry.values)) for k, g in roofs.groupby("site_id"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "dense", help="a make model-dense run folder")
    parser.add_argument("--scans", default="heldout-scans", help="its folder of held-out scans (the card's)")
    parser.add_argument("--cover", type=float, default=0.9, help="share of roof below which a farm is partly covered")
    args = parser.parse_args()
    card = args.run / "heldout.json"
    if not card.is_file():
        raise SystemExit(f"{card}: not found; run 'make model-dense' (its card) first")
    key = "previous_objects" if args.scans.endswith("-previous") else "objects"
    # The card's own per-site rows: counts as 'minewatch evaluate' matched them; only the roof cover is new here.
    rows = [r for r in (json.loads(card.read_text(encoding="utf-8"))[key] or {}).get("sites", [])
            if (r.get("teu_true") or 0) > 0]
    covers = {scene: roof_cover(args.run / "heldout" / scene, sites)
              for scene in sorted({r["scene"] for r in rows})
              for sites in sorted((args.run / args.scans / scene).glob("sites.*"))[:1]}
    teu = np.array([r["teu_true"] for r in rows], dtype=float)
    est = np.array([r.get("teu_est") if r.get("teu_est") is not None else np.nan for r in rows], dtype=float)
    cover = np.array([covers.get(r["scene"], {}).get(r["site_id"], 0.0) for r in rows])
    err = np.where(np.isfinite(est), (est - teu) / teu, np.inf)
    wrong = ~(np.abs(err) <= COUNT_TOLERANCE + 1e-9)
    missed = wrong & ~np.isfinite(est)
    partly = wrong & np.isfinite(est) & (cover < args.cover)
    miscounted = wrong & np.isfinite(est) & (cover >= args.cover)
    print(f"| {args.run.name}: {len(rows)} held-out farms | farms |")
    print("|---|---:|")
    print(f"| counted within 20 % | {int((~wrong).sum())} |")
    print(f"| missed | {int(missed.sum())} |")
    print(f"| partly covered (< {args.cover:.0%} of the roof) | {int(partly.sum())} |")
    low, high = int((miscounted & (err < 0)).sum()), int((miscounted & (err > 0)).sum())
    print(f"| covered, counted low / high | {low} / {high} |")
    for i in sorted(np.flatnonzero(partly), key=lambda i: cover[i])[:3]:
        print(f"\npartly covered: {rows[i]['scene']} {rows[i]['site_id']}: {teu[i]:g} TEU, counted {est[i]:g}, "
              f"{cover[i]:.0%} of the roof covered", end="")
    print()


if __name__ == "__main__":
    main()
