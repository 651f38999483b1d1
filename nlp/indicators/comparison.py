"""Thematic profiles of the metropolises and how far apart they are (stage: indicators).

Input: paragraph shares per metropolis × theme (level ``all``). Output: profiles (the shares
normalised to sum to 1 over the themes), Jensen–Shannon distances between profiles (base 2,
in [0, 1]) and an average-linkage clustering cut into ``n_clusters``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.cluster import hierarchy
from scipy.spatial.distance import jensenshannon, squareform


def compare_profiles(metropoles: list[str], columns: list[str], shares: np.ndarray, n_clusters: int
                     ) -> dict[str, pd.DataFrame]:
    tot = np.nansum(shares, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        prof = np.where(tot[:, None] > 0, np.nan_to_num(shares) / np.where(tot[:, None] > 0, tot[:, None], 1), np.nan)
    profiles = pd.DataFrame(prof, columns=columns)
    profiles.insert(0, "metropole", metropoles)
    ok = [i for i in range(len(metropoles)) if tot[i] > 0]
    dist_rows = [(metropoles[i], metropoles[j], float(jensenshannon(prof[i], prof[j], base=2)))
                 for a, i in enumerate(ok) for j in ok[a + 1:]]
    distances = pd.DataFrame(dist_rows, columns=["metropole_a", "metropole_b", "js_distance"])
    clusters = pd.DataFrame(columns=["metropole", "leaf_order", "cluster", "linkage_index"])
    linkage = pd.DataFrame(columns=["left", "right", "distance", "size"])
    if len(ok) >= 2:
        dm = np.zeros((len(ok), len(ok)))
        pos = {metropoles[i]: k for k, i in enumerate(ok)}
        for a, b, d in dist_rows:
            dm[pos[a], pos[b]] = dm[pos[b], pos[a]] = d
        Z = hierarchy.linkage(squareform(dm, checks=False), method="average")
        labels = hierarchy.fcluster(Z, t=max(1, min(n_clusters, len(ok))), criterion="maxclust")
        order = np.empty(len(ok), dtype=int)
        order[hierarchy.leaves_list(Z)] = np.arange(len(ok))
        clusters = pd.DataFrame({"metropole": [metropoles[i] for i in ok], "leaf_order": order,
                                 "cluster": labels, "linkage_index": np.arange(len(ok))})
        linkage = pd.DataFrame(Z, columns=["left", "right", "distance", "size"])
    return {"profiles": profiles, "distances": distances, "clusters": clusters, "linkage": linkage}
