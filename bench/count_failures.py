"""Why a dense model's container counts miss: each held-out farm's count error beside how much of its container
roof the candidate sites cover, from the scans its model card made (``runs/dense/heldout-scans``).

A farm counted wrong (more than 20 % off, or missed) is one of three kinds:

- missed: no candidate touches it;
- partly covered: the candidates cover less than ``--cover`` of its container roof (the masks, or the windows,
  left part of the farm out);
- covered, miscounted: the roof is covered but the count from the mask's area is off (low or high).

The count is the ``n_containers`` of the candidate with the best polygon IoU, as ``minewatch evaluate`` takes it.

Usage: python bench/count_failures.py [--run runs/dense] [--scans heldout-scans] [--cover 0.9]
Prints a Markdown table for BENCHMARKS.md ("Dense head").
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def farm_rows(scene: Path, sites_path: Path) -> list[dict]:
    """One row per farm of ``scene``: true and estimated TEU, share of roof covered, candidates touching it."""
    import shapely

    from minewatch.datasets.labels import read_truth
    from minewatch.datasets.vectors import read_vector
    from minewatch.infer.object_eval import truth_farms

    sites = read_vector(sites_path, role="sites")
    truth = read_truth(scene / "truth.geojson").to_crs(sites.crs)
    farms = truth_farms(truth).set_index("site_id")
    rows = []
    for site_id, group in truth.groupby("site_id"):
        if site_id not in farms.index or farms.loc[site_id, "teu"] <= 0:
            continue
        whole = shapely.union_all(group.geometry.values)
        roof = shapely.union_all(group[group["class"] == "container_farm"].geometry.values)
        hit = sites[sites.intersects(whole)]
        row = {"scene": scene.name, "site": site_id, "teu": float(farms.loc[site_id, "teu"]), "n": len(hit),
               "est": np.nan, "cover": 0.0}
        if len(hit):
            ious = [shapely.area(shapely.intersection(c, whole)) / shapely.area(shapely.union(c, whole))
                    for c in hit.geometry]
            row["est"] = float(hit.iloc[int(np.argmax(ious))].get("n_containers", np.nan))
            row["cover"] = float(shapely.area(shapely.intersection(shapely.union_all(hit.geometry.values), roof))
                                 / shapely.area(roof))
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "dense", help="a make model-dense run folder")
    parser.add_argument("--scans", default="heldout-scans", help="its folder of held-out scans (the card's)")
    parser.add_argument("--cover", type=float, default=0.9, help="share of roof below which a farm is partly covered")
    args = parser.parse_args()
    rows = []
    for scene in sorted((args.run / "heldout").glob("scene_*")):
        sites = next(iter(sorted((args.run / args.scans / scene.name).glob("sites.*"))), None)
        if sites is None:
            raise SystemExit(f"{args.run / args.scans / scene.name}: no sites; run 'make model-dense' (its card) first")
        rows.extend(farm_rows(scene, sites))
    teu = np.array([r["teu"] for r in rows])
    est = np.array([r["est"] for r in rows])
    cover = np.array([r["cover"] for r in rows])
    err = np.where(np.isfinite(est), (est - teu) / teu, np.inf)
    wrong = ~(np.abs(err) <= 0.2 + 1e-9)
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
    worst = sorted((r for r, p in zip(rows, partly, strict=True) if p), key=lambda r: r["cover"])[:3]
    for r in worst:
        print(f"\npartly covered: {r['scene']} {r['site']}: {r['teu']:g} TEU, counted {r['est']:g}, "
              f"{r['cover']:.0%} of the roof covered", end="")
    print()


if __name__ == "__main__":
    main()
