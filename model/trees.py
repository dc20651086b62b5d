"""XGBoost tree ensembles evaluated with numpy, for small batches.

``Booster.inplace_predict`` has a fixed cost per call (a proxy DMatrix, array-interface JSON,
a ctypes round trip) of a few hundred microseconds, which for one customer and three models is
most of a prediction. :class:`TreeEnsembles` compiles several boosters (``gbtree``, numerical
splits) into flat node arrays once and walks every tree of every model together, one numpy step
per tree level. For large batches XGBoost's own multi-threaded predictor is faster, so callers
use this below a row threshold; :mod:`model.runner` checks both agree before using it.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Mapping

    import xgboost as xgb

# objective -> (margin of base_score, inverse link)
_LINKS = {
    "binary:logistic": ("logit", "sigmoid"),
    "reg:logistic": ("logit", "sigmoid"),
    "count:poisson": ("log", "exp"),
    "reg:tweedie": ("log", "exp"),
    "reg:gamma": ("log", "exp"),
    "reg:squarederror": ("identity", "identity"),
    "reg:absoluteerror": ("identity", "identity"),
}


class UnsupportedModel(ValueError):
    """A booster this evaluator cannot reproduce (multi-class, categorical splits, dart, ...)."""


def _base_margin(base_score: str, kind: str) -> float:
    value = float(str(base_score).strip("[]").split(",")[0])
    if kind == "logit":
        value = min(max(value, 1e-16), 1 - 1e-16)
        return math.log(value / (1 - value))
    if kind == "log":
        return math.log(max(value, 1e-16))
    return value


class TreeEnsembles:
    """Several boosters' trees flattened into one node table (see module docstring)."""

    def __init__(self, boosters: Mapping[str, xgb.Booster]) -> None:
        features, thresholds, lefts, rights, defaults, values = [], [], [], [], [], []
        roots: list[int] = []
        owner: list[int] = []
        self.names = list(boosters)
        self._base = np.zeros(len(self.names))
        self._links: list[str] = []
        depth = 0
        offset = 0
        for m, name in enumerate(self.names):
            doc = json.loads(bytes(boosters[name].save_raw("json")))
            learner = doc["learner"]
            objective = learner["objective"]["name"]
            booster = learner["gradient_booster"]
            if objective not in _LINKS or booster.get("name") != "gbtree":
                raise UnsupportedModel(f"{name}: objective {objective} / booster {booster.get('name')}")
            params = learner["learner_model_param"]
            if int(params.get("num_class", "0")) > 1 or int(params.get("num_target", "1")) != 1:
                raise UnsupportedModel(f"{name}: multi-output model")
            margin_kind, link = _LINKS[objective]
            self._base[m] = _base_margin(params["base_score"], margin_kind)
            self._links.append(link)
            for tree in booster["model"]["trees"]:
                if any(tree.get("split_type", [])) or tree.get("categories"):
                    raise UnsupportedModel(f"{name}: categorical splits")
                left = np.asarray(tree["left_children"], dtype=np.int64)
                right = np.asarray(tree["right_children"], dtype=np.int64)
                size = len(left)
                leaf = left == -1
                node = np.arange(size, dtype=np.int64)
                lefts.append(np.where(leaf, node, left) + offset)  # a leaf points to itself
                rights.append(np.where(leaf, node, right) + offset)
                features.append(np.where(leaf, 0, np.asarray(tree["split_indices"], dtype=np.int64)))
                conditions = np.asarray(tree["split_conditions"], dtype=np.float32)
                thresholds.append(conditions)
                values.append(np.where(leaf, conditions, 0.0).astype(np.float64))
                defaults.append(np.asarray(tree["default_left"], dtype=bool))
                depth = max(depth, _depth(left, right))
                roots.append(offset)
                owner.append(m)
                offset += size
        self.depth = depth
        self.roots = np.asarray(roots, dtype=np.int64)
        self.owner = np.asarray(owner, dtype=np.int64)
        self.feature = np.concatenate(features) if features else np.zeros(0, np.int64)
        self.threshold = np.concatenate(thresholds) if thresholds else np.zeros(0, np.float32)
        self.left = np.concatenate(lefts) if lefts else np.zeros(0, np.int64)
        self.right = np.concatenate(rights) if rights else np.zeros(0, np.int64)
        self.default_left = np.concatenate(defaults) if defaults else np.zeros(0, bool)
        self.value = np.concatenate(values) if values else np.zeros(0)
        self._starts = np.searchsorted(self.owner, np.arange(len(self.names)))

    def margins(self, matrix: np.ndarray) -> np.ndarray:
        """Raw margins ``(n_rows, n_models)`` for a float32 feature matrix."""
        matrix = np.asarray(matrix, dtype=np.float32)
        n = matrix.shape[0]
        index = np.broadcast_to(self.roots, (n, len(self.roots))).copy()
        rows = np.arange(n)[:, None]
        for _ in range(self.depth):
            x = matrix[rows, self.feature[index]]
            go_left = np.where(np.isnan(x), self.default_left[index], x < self.threshold[index])
            index = np.where(go_left, self.left[index], self.right[index])
        leaves = self.value[index]
        sums = np.add.reduceat(leaves, self._starts, axis=1) if len(self.roots) else np.zeros((n, 0))
        return sums + self._base[None, :]

    def predict(self, matrix: np.ndarray) -> dict[str, np.ndarray]:
        """Predictions per model name (inverse link applied, rounded to float32 as XGBoost returns)."""
        margins = self.margins(matrix)
        out: dict[str, np.ndarray] = {}
        for m, name in enumerate(self.names):
            z = margins[:, m]
            link = self._links[m]
            if link == "sigmoid":
                out[name] = 1.0 / (1.0 + np.exp(-z))
            elif link == "exp":
                out[name] = np.exp(z)
            else:
                out[name] = z
            out[name] = out[name].astype(np.float32).astype(np.float64)
        return out


def _depth(left: np.ndarray, right: np.ndarray) -> int:
    """Levels below the root of the deepest leaf."""
    deepest, level = 0, [0]
    while level:
        following = [int(c) for node in level for c in (left[node], right[node]) if c != -1]
        if following:
            deepest += 1
        level = following
    return deepest
