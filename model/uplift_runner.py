"""The served uplift: each offer's expected effect and the next best action, from a :class:`FeatureBatch`.

``/predict`` answers one customer in a few milliseconds; the uplift model is fourteen small
XGBoost ensembles (a baseline and two effect models per offer, for conversion and spend), and a
DataFrame plus ``inplace_predict`` per booster would cost more than everything else in the
request. :class:`UpliftRunner` builds the model matrix from the batch's numpy blocks and, for
small batches, walks every booster's trees together (:mod:`model.trees`); at load it checks both
against :meth:`model.uplift.UpliftPredictor.predict` on probe rows and keeps only what agrees,
as :class:`model.runner.FastPersonaRunner` does for the churn model.

The next best action is the decision ``persona campaign plan`` makes per customer (before the
budget): the offer with the highest expected incremental value minus its cost per contact, none
when no offer clears ``min_expected_value`` (:func:`model.uplift.net_values`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from model.uplift import net_values, uplift_column

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from model.uplift import UpliftPredictor
    from store.feature_batch import FeatureBatch

logger = logging.getLogger(__name__)

NEXT_OFFER, NEXT_VALUE, NEXT_UPLIFT = "next_best_offer", "next_best_value", "next_best_uplift"


class UpliftRunner:
    """An uplift model ready to serve (see the module docstring).

    Args:
        predictor: the loaded uplift model.
        costs: cost per contact of each offer (an offer without one is never recommended).
        value_per_conversion: money one conversion is worth (None: use the predicted spend uplift).
        min_expected_value: the net value an offer must exceed to be recommended.
        version: the registered version (reported with each answer).
        small_batch: batches up to this many rows walk the trees in numpy.
    """

    def __init__(self, predictor: UpliftPredictor, costs: Mapping[str, float], value_per_conversion: float | None,
                 min_expected_value: float = 0.0, version: str = "", small_batch: int = 16) -> None:
        self.predictor = predictor
        self.version = version
        self.offers = tuple(o for o in predictor.offers if o in costs)
        self.unpriced = tuple(o for o in predictor.offers if o not in costs)
        self.costs = {o: float(costs[o]) for o in self.offers}
        self.values = dict.fromkeys(self.offers, value_per_conversion)
        self.min_expected_value = min_expected_value
        self.small_batch = small_batch
        self.feature_columns = tuple(predictor.feature_columns)
        self._layouts: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[np.ndarray, list] | None] = {}
        for booster in predictor.models.values():
            booster.set_param({"nthread": 1})
        self._trees = None
        try:
            from model.runner import probe_batch
            from model.trees import TreeEnsembles

            self._trees = TreeEnsembles(predictor.models)
            probe = probe_batch(predictor, rows=64, seed=2)
            if not self._agrees(probe):
                raise ValueError("numpy trees disagree with the uplift model's own predict")
        except Exception as exc:  # an unsupported layout or a disagreement: XGBoost's own predictor
            logger.info("numpy tree evaluation of the uplift model unavailable (%s); using inplace_predict", exc)
            self._trees = None

    def _agrees(self, probe: FeatureBatch) -> bool:
        from model.runner import batch_frame

        mine = self.outputs(probe)
        theirs = self.predictor.predict(batch_frame(probe, self.feature_columns))
        return all(np.allclose(mine[c], theirs[c].to_numpy(dtype=float), rtol=1e-5, atol=1e-6) for c in theirs)

    def serves(self, batch: FeatureBatch) -> bool:
        """Whether ``batch`` holds every feature the uplift model needs."""
        return self._layout(batch) is not None

    def _layout(self, batch: FeatureBatch) -> tuple[np.ndarray, list] | None:
        key = (tuple(batch.numeric_columns), tuple(batch.string_columns))
        if key not in self._layouts:
            spec = self.predictor.features
            numeric, strings = list(key[0]), list(key[1])
            if any(c not in numeric for c in spec.numeric) or any(c not in strings for c in spec.categorical):
                self._layouts[key] = None
            else:
                self._layouts[key] = (np.array([numeric.index(c) for c in spec.numeric], dtype=np.intp),
                                      [(strings.index(c), np.array(levels, dtype=object))
                                       for c, levels in spec.categorical.items()])
        return self._layouts[key]

    def _matrix(self, batch: FeatureBatch) -> np.ndarray:
        layout = self._layout(batch)
        if layout is None:
            raise ValueError(f"the feature batch lacks the uplift model's features {list(self.feature_columns)}")
        numeric_index, levels = layout
        blocks = [batch.numeric[:, numeric_index]]
        for j, values in levels:
            column = batch.strings[:, j]
            blocks.append((column[:, None] == values[None, :]).astype(float))
        return np.hstack(blocks).astype(np.float32)

    def outputs(self, batch: FeatureBatch, baselines: bool = True) -> dict[str, np.ndarray]:
        """The uplift model's columns (``uplift_<outcome>_<offer>``, and ``baseline_<outcome>`` if asked) per row."""
        matrix = self._matrix(batch)
        raw: Callable[[str], np.ndarray]
        if len(matrix) == 0:
            def raw(_key: str) -> np.ndarray:
                return np.zeros(0)
        elif self._trees is not None and len(matrix) <= self.small_batch:
            predicted = self._trees.predict(matrix)
            raw = predicted.__getitem__
        else:
            models = self.predictor.models

            def raw(key: str) -> np.ndarray:
                return np.asarray(models[key].inplace_predict(matrix), dtype=float)
        return self.predictor.combine(raw, baselines)

    def predict(self, batch: FeatureBatch) -> dict[str, np.ndarray]:
        """Per row: the uplift columns of every offer and the next best action.

        Returns:
            The uplift columns plus ``next_best_offer`` (None when no offer pays),
            ``next_best_value`` (expected incremental value minus cost of the best offer) and
            ``next_best_uplift`` (its expected conversion uplift).
        """
        out = self.outputs(batch, baselines=False)
        n = len(batch)
        if not self.offers:
            out.update({NEXT_OFFER: np.full(n, None, dtype=object), NEXT_VALUE: np.full(n, np.nan),
                        NEXT_UPLIFT: np.full(n, np.nan)})
            return out
        net = net_values(out, self.offers, self.costs, self.values)
        best = np.argmax(net, axis=1)
        rows = np.arange(n)
        best_net = net[rows, best]
        conversion = np.column_stack([out[uplift_column("conversion", o)] for o in self.offers])
        chosen = np.asarray(self.offers, dtype=object)[best]
        chosen[best_net <= self.min_expected_value] = None
        out[NEXT_OFFER] = chosen
        out[NEXT_VALUE] = best_net
        out[NEXT_UPLIFT] = conversion[rows, best]
        return out

    def describe(self) -> dict[str, object]:
        """What the runner recommends from (the ``model_info`` API)."""
        return {"version": self.version, "offers": list(self.offers), "costs": self.costs,
                "value_per_conversion": next(iter(self.values.values()), None),
                "offers_without_cost": list(self.unpriced), "fast_path": self._trees is not None}


__all__ = ["NEXT_OFFER", "NEXT_UPLIFT", "NEXT_VALUE", "UpliftRunner"]
