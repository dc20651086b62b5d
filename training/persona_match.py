"""Stable personas: match a retrain's clusters to the champion's personas (pure).

KMeans numbers its clusters anew at every fit, so without matching "persona 2" and its name
change meaning at every retrain and a campaign aimed at a persona silently changes audience.
A retrain therefore compares its clusters with the champion's in the champion's standardized
clustering space, on the same customers:

- **kept**: a one-to-one assignment (Hungarian, :func:`scipy.optimize.linear_sum_assignment`) of
  new centroids to the champion's centers over the acceptable pairs only: the new centroid lies
  within half the distance from that center to its nearest other center, or most of the persona's
  customers are in that cluster. As many personas as possible are matched, then the nearest; a
  matched cluster keeps the persona's id and name;
- **split**: an unmatched cluster whose customers mostly belonged to one persona and whose centroid
  lies nearer to that persona than the persona's nearest neighbour does; the part matched to the
  persona keeps its id, and a persona matched to no part retires its id (share after 0);
- **merged**: an unmatched persona whose customers went mostly (over half) into one matched cluster;
- **new**: any other unmatched cluster, one farther from every persona than personas are from
  each other (a fresh id, never reused);
- **vanished**: any other unmatched persona.

Shares before and after are both measured on the same rows: the champion's assignment and the
new one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

STATUSES = ("kept", "split", "merged", "new", "vanished")


@dataclass(frozen=True)
class PersonaChange:
    """What happened to one persona between the champion and the retrain.

    Attributes:
        persona_id: the stable id (the champion's for kept, split, merged and vanished personas).
        name: the persona's name (the champion's when it kept its id).
        status: one of :data:`STATUSES`.
        share_before: its share of the rows under the champion (0 for a new persona).
        share_after: its share under the retrain (0 for a vanished or merged-away persona).
        related: ids it split into or from, or merged into or with.
        absorbed: personas merged into it while it also split (a kept id can do both).
    """

    persona_id: int
    name: str
    status: str
    share_before: float
    share_after: float
    related: tuple[int, ...] = ()
    absorbed: tuple[int, ...] = ()

    def describe(self) -> str:
        """One line: ``3 "loyal fans": split into 8, 9 (share 40.0% -> 0.0%)``."""
        links = ", ".join(str(i) for i in self.related)
        what = self.status
        if self.status == "split":
            what = (f"split from {links}" if self.share_before == 0 else f"split into {links}"
                    if self.share_after == 0 else f"kept its id, split off {links}")
        elif self.status == "merged":
            what = f"merged into {links}" if self.share_after == 0 else f"kept its id, merged with {links}"
        if self.absorbed:
            what += f", merged with {', '.join(str(i) for i in self.absorbed)}"
        return f'{self.persona_id} "{self.name}": {what} (share {self.share_before:.1%} -> {self.share_after:.1%})'

    def to_dict(self) -> dict:
        """JSON-ready form (for the cards and the registry)."""
        return {"persona_id": self.persona_id, "name": self.name, "status": self.status,
                "share_before": round(self.share_before, 4), "share_after": round(self.share_after, 4),
                "related": list(self.related), "absorbed": list(self.absorbed)}


@dataclass(frozen=True)
class PersonaMatch:
    """The retrain's clusters expressed in the champion's persona ids.

    Attributes:
        ids: stable id of each new cluster (index = new cluster).
        names: stable id -> name for the new clusters (kept names carried over, others from ``fresh_names``).
        changes: one entry per persona on either side, ordered by id.
        next_id: the first id never used (a vanished id is never given to another group).
    """

    ids: tuple[int, ...]
    names: dict[int, str]
    changes: tuple[PersonaChange, ...] = field(default_factory=tuple)
    next_id: int = 0

    def change_of(self, persona_id: int) -> PersonaChange | None:
        """The change recorded for ``persona_id`` (a persona of the retrain)."""
        return next((c for c in self.changes if c.persona_id == persona_id and c.status != "vanished"), None)


def _radii(centers: np.ndarray) -> np.ndarray:
    """Half the distance from each center to its nearest other center (inf with a single center)."""
    if len(centers) < 2:
        return np.full(len(centers), np.inf)
    gaps = np.linalg.norm(centers[:, None, :] - centers[None, :, :], axis=2)
    np.fill_diagonal(gaps, np.inf)
    return gaps.min(axis=1) / 2


def match_personas(
    old_centers: np.ndarray,
    old_ids: list[int] | tuple[int, ...],
    old_names: dict[int, str],
    new_centroids: np.ndarray,
    old_of_row: np.ndarray,
    new_of_row: np.ndarray,
    fresh_names: dict[int, str],
    next_id: int | None = None,
) -> PersonaMatch:
    """Give each new cluster a persona id: the champion's when it is the same group, else a fresh one.

    Args:
        old_centers: (k_old, d) the champion's centers in its standardized clustering space.
        old_ids: the champion's persona id of each center.
        old_names: the champion's id -> name.
        new_centroids: (k_new, d) the new clusters' centroids in the same (champion's) space.
        old_of_row: the champion's persona id of each shared row.
        new_of_row: the new cluster (index) of each shared row.
        fresh_names: new cluster index -> the name the retrain gave it (used when it gets a fresh id).
        next_id: the first id never used by the champion's lineage (default: max old id + 1).

    Returns:
        The ids, names and changes.
    """
    old_centers = np.asarray(old_centers, float)
    new_centroids = np.asarray(new_centroids, float)
    old_ids = [int(i) for i in old_ids]
    k_old, k_new = len(old_ids), len(new_centroids)
    position = {pid: i for i, pid in enumerate(old_ids)}
    old_pos = np.array([position.get(int(p), -1) for p in np.asarray(old_of_row)], dtype=int)
    new_of_row = np.asarray(new_of_row, dtype=int)
    counts = np.zeros((k_old, k_new))
    known = old_pos >= 0
    np.add.at(counts, (old_pos[known], new_of_row[known]), 1.0)
    total = max(float(counts.sum()), 1.0)
    old_size, new_size = counts.sum(axis=1), counts.sum(axis=0)
    distance = np.linalg.norm(old_centers[:, None, :] - new_centroids[None, :, :], axis=2)
    radius = _radii(old_centers)

    from scipy.optimize import linear_sum_assignment

    # Only acceptable pairs compete on distance; any other pair costs more than all of them together,
    # so the assignment first matches as many personas as it can, then the nearest ones.
    acceptable = (distance <= radius[:, None]) | (counts > 0.5 * old_size[:, None])
    cost = np.where(acceptable, distance, float(distance[acceptable].sum()) + 1.0)
    rows, cols = linear_sum_assignment(cost)
    partner_of_old: dict[int, int] = {}
    partner_of_new: dict[int, int] = {}
    for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
        if acceptable[i, j]:
            partner_of_old[i], partner_of_new[j] = j, i

    ids = [-1] * k_new
    for j, i in partner_of_new.items():
        ids[j] = old_ids[i]
    fresh = max([next_id or 0, *(p + 1 for p in old_ids)], default=0)
    split_from: dict[int, int] = {}
    for j in range(k_new):
        if ids[j] >= 0:
            continue
        parent = int(np.argmax(counts[:, j])) if k_old else -1
        if parent >= 0 and counts[parent, j] > 0.5 * new_size[j] and distance[parent, j] <= 2 * radius[parent]:
            split_from[j] = parent
        ids[j] = fresh
        fresh += 1
    merged_into: dict[int, int] = {}
    for i in range(k_old):
        if i in partner_of_old or old_size[i] == 0 or i in split_from.values():
            continue
        target = int(np.argmax(counts[i])) if k_new else -1
        if target >= 0 and target in partner_of_new and counts[i, target] > 0.5 * old_size[i]:
            merged_into[i] = target

    names: dict[int, str] = {}
    used = set(old_names.values())  # a fresh group never takes a name the champion gave another group
    for j in range(k_new):
        if j in partner_of_new:
            names[ids[j]] = old_names.get(ids[j], f"segment {ids[j]}")
            continue
        base, name, n = fresh_names.get(j, f"segment {ids[j]}"), fresh_names.get(j, f"segment {ids[j]}"), 2
        while name in used:
            name, n = f"{base} {n}", n + 1
        used.add(name)
        names[ids[j]] = name

    before = {old_ids[i]: old_size[i] / total for i in range(k_old)}
    after = {ids[j]: new_size[j] / total for j in range(k_new)}
    changes: list[PersonaChange] = []
    for j in range(k_new):
        pid = ids[j]
        if j in partner_of_new:
            i = partner_of_new[j]
            parts = tuple(sorted(ids[s] for s, p in split_from.items() if p == i))
            absorbed = tuple(sorted(old_ids[m] for m, t in merged_into.items() if t == j))
            status = "split" if parts else "merged" if absorbed else "kept"
            changes.append(PersonaChange(pid, names[pid], status, before[pid], after[pid], parts or absorbed,
                                         absorbed if parts else ()))
        elif j in split_from:
            parent = old_ids[split_from[j]]
            changes.append(PersonaChange(pid, names[pid], "split", 0.0, after[pid], (parent,)))
        else:
            changes.append(PersonaChange(pid, names[pid], "new", 0.0, after[pid]))
    for i in range(k_old):
        if i in partner_of_old:
            continue
        pid, name = old_ids[i], old_names.get(old_ids[i], f"segment {old_ids[i]}")
        parts = tuple(sorted(ids[s] for s, p in split_from.items() if p == i))
        if parts:
            changes.append(PersonaChange(pid, name, "split", before[pid], 0.0, parts))
        elif i in merged_into:
            changes.append(PersonaChange(pid, name, "merged", before[pid], 0.0, (ids[merged_into[i]],)))
        else:
            changes.append(PersonaChange(pid, name, "vanished", before[pid], 0.0))
    changes.sort(key=lambda c: (c.persona_id, c.status == "vanished"))
    return PersonaMatch(tuple(ids), names, tuple(changes), fresh)


def centroids_in(matrix: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Mean row of each label ``0..k-1`` in ``matrix`` (NaN-free: an empty label gets the overall mean)."""
    labels = np.asarray(labels, dtype=int)
    overall = matrix.mean(axis=0) if len(matrix) else np.zeros(matrix.shape[1])
    return np.stack([matrix[labels == j].mean(axis=0) if (labels == j).any() else overall for j in range(k)])
