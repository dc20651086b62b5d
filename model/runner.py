"""Model runners: the champion's predictions from a :class:`FeatureBatch`, without a DataFrame.

:class:`PersonaPredictor.predict` takes a DataFrame (the training and batch-scoring contract).
For a single customer, building that frame and the model matrix through pandas costs more than
the prediction itself, so :class:`FastPersonaRunner` computes the same outputs from numpy
blocks: the one-hot model matrix, XGBoost ``inplace_predict``, the persona clustering transform
and the action policy. At load it checks itself against ``PersonaPredictor.predict`` on probe
rows and falls back to the DataFrame path (:class:`FrameRunner`) if they ever disagree, so a
change to the bundle's logic can slow serving down but never change its answers.
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np
import pandas as pd

from core.contract import PREDICTION_COLUMNS
from model.calibration import calibrate_churn
from model.preprocess import P_ALIVE, lifetime_block, p_alive_of, served_orders
from store.feature_batch import FeatureBatch, split_columns

logger = logging.getLogger(__name__)


class FrameModel(Protocol):
    """What serving needs from a model: its input columns and ``predict(frame)``."""

    @property
    def feature_columns(self) -> list[str]:
        """Input columns in model order."""
        ...

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """One row of :data:`core.contract.PREDICTION_COLUMNS` per input row."""
        ...


class ModelRunner(Protocol):
    """Predictions from a feature batch: column name -> array (one value per row)."""

    feature_columns: tuple[str, ...]
    string_columns: frozenset[str]

    def predict(self, batch: FeatureBatch) -> dict[str, np.ndarray]:
        """Predictions for every row of ``batch``."""
        ...


def string_columns_of(model: object) -> frozenset[str]:
    """The model's string (categorical) inputs.

    ``features.categorical`` of a Persona bundle, else a ``string_columns`` attribute, else none.
    """
    spec = getattr(model, "features", None)
    if spec is not None and hasattr(spec, "categorical"):
        return frozenset(spec.categorical)
    return frozenset(getattr(model, "string_columns", ()) or ())


def batch_frame(batch: FeatureBatch, columns: tuple[str, ...]) -> pd.DataFrame:
    """The batch as a DataFrame with ``columns`` (numbers as float64, strings as object)."""
    data: dict[str, np.ndarray] = {}
    for name in columns:
        data[name] = batch.column(name)
    return pd.DataFrame(data, columns=list(columns))


class FrameRunner:
    """Any model with ``feature_columns`` and ``predict(frame)`` (fakes in tests, custom models)."""

    def __init__(self, model: FrameModel) -> None:
        self.model = model
        self.feature_columns = tuple(model.feature_columns)
        self.string_columns = string_columns_of(model)

    def predict(self, batch: FeatureBatch) -> dict[str, np.ndarray]:
        """Build a DataFrame from the batch and call the model's own ``predict``."""
        out = self.model.predict(batch_frame(batch, self.feature_columns))
        missing = [c for c in PREDICTION_COLUMNS if c not in out.columns]
        if missing:
            raise ValueError(f"model output lacks {missing}")
        extra = (P_ALIVE,) if P_ALIVE in out.columns else ()
        return {c: out[c].to_numpy() for c in (*PREDICTION_COLUMNS, *extra)}


class FastPersonaRunner:
    """``PersonaPredictor.predict`` on numpy blocks (same outputs, no pandas).

    Batches of up to ``small_batch`` rows walk the trees in numpy (:mod:`model.trees`), larger
    ones use XGBoost's ``inplace_predict``. Actions come from a table of every
    (persona, churn risk, value tier) combination, filled once by the policy itself.
    """

    def __init__(self, predictor, small_batch: int = 16) -> None:
        if predictor.kind != "persona":
            raise ValueError(f"serving needs a persona bundle, got kind={predictor.kind!r}")
        spec = predictor.features
        self.predictor = predictor
        self.feature_columns = tuple(predictor.feature_columns)
        self.string_columns = frozenset(spec.categorical)
        numeric_columns, string_columns = split_columns(self.feature_columns, set(self.string_columns))
        self._numeric_index = np.array([numeric_columns.index(c) for c in spec.numeric], dtype=np.intp)
        self._levels = [
            (string_columns.index(c), np.array(levels, dtype=object))
            for c, levels in spec.categorical.items()
        ]
        cluster = predictor.cluster
        self._cluster_index = np.array(
            [numeric_columns.index(c) if c in numeric_columns else -1 for c in cluster.columns], dtype=np.intp
        )
        self._cluster_log = np.array([c in cluster.log_columns for c in cluster.columns], dtype=bool)
        self._cluster_medians = np.asarray(cluster.medians, dtype=float)
        self._cluster_mean = np.asarray(cluster.mean, dtype=float)
        self._cluster_scale = np.asarray(cluster.scale, dtype=float)
        self._centers = np.asarray(predictor.centers, dtype=float)
        self._center_norms = np.square(self._centers).sum(1)
        self._segment_ids = predictor.segment_ids
        self._names = predictor.persona_names
        self.small_batch = small_batch
        for booster in predictor.models.values():
            # OpenMP threads spin while waiting; on a shared box one thread per request is faster.
            booster.set_param({"nthread": 1})
        self._trees = None
        try:
            from model.trees import TreeEnsembles

            self._trees = TreeEnsembles(
                {name: predictor.models[name] for name in ("churn", "orders", "spend")}
            )
            self._check_trees(probe_batch(predictor, rows=256, seed=1))
        except Exception as exc:  # unsupported layout or a disagreement: XGBoost's own predictor it is
            logger.info("numpy tree evaluation unavailable (%s); using inplace_predict", exc)
            self._trees = None
        self._actions = _action_table(predictor, list(self._names.values()))

    def _check_trees(self, probe: FeatureBatch) -> None:
        """Raise ValueError unless the numpy trees give XGBoost's own predictions on ``probe``."""
        matrix = self._matrix(probe)
        assert self._trees is not None
        mine = self._trees.predict(matrix)
        for name, values in mine.items():
            theirs = np.asarray(self.predictor.models[name].inplace_predict(matrix), dtype=float)
            if not np.allclose(values, theirs, rtol=1e-5, atol=1e-6):
                raise ValueError(f"numpy trees disagree with XGBoost on {name}")

    def _scores(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if len(matrix) == 0:
            return np.zeros(0), np.zeros(0), np.zeros(0)
        if self._trees is not None and len(matrix) <= self.small_batch:
            out = self._trees.predict(matrix)
            churn, orders, spend = out["churn"], out["orders"], out["spend"]
        else:
            models = self.predictor.models
            churn, orders, spend = (
                np.asarray(models[m].inplace_predict(matrix), dtype=float)
                for m in ("churn", "orders", "spend")
            )
        churn = calibrate_churn(self.predictor.metadata, np.clip(churn, 0.0, 1.0))
        orders = served_orders(np.clip(orders, 0.0, None), matrix, self.predictor.features)
        return churn, orders, np.clip(spend, 0.0, None)

    def _matrix(self, batch: FeatureBatch) -> np.ndarray:
        numeric = batch.numeric[:, self._numeric_index]
        blocks = [numeric]
        for j, levels in self._levels:
            values = batch.strings[:, j]
            blocks.append((values[:, None] == levels[None, :]).astype(float))
        blocks.append(lifetime_block(numeric.astype(float), self.predictor.features))  # as model_matrix does
        return np.hstack(blocks).astype(np.float32)

    def _segments(self, batch: FeatureBatch) -> np.ndarray:
        n = len(batch)
        raw = np.full((n, len(self._cluster_index)), np.nan)
        present = self._cluster_index >= 0
        raw[:, present] = batch.numeric[:, self._cluster_index[present]]
        values = np.where(np.isnan(raw), self._cluster_medians, raw)
        values[:, self._cluster_log] = np.log1p(np.clip(values[:, self._cluster_log], 0.0, None))
        matrix = (values - self._cluster_mean) / self._cluster_scale
        if n == 0:
            return np.zeros(0, dtype=int)
        distance = (
            np.square(matrix).sum(1)[:, None] - 2 * matrix @ self._centers.T + self._center_norms[None, :]
        )
        return self._segment_ids[np.argmin(distance, axis=1)].astype(int)

    def predict(self, batch: FeatureBatch) -> dict[str, np.ndarray]:
        """The bundle's outputs from numpy trees (or ``inplace_predict``), without a DataFrame."""
        from model.actions import assign_actions, tier

        matrix = self._matrix(batch)
        churn, orders, spend = self._scores(matrix)
        segments = self._segments(batch)
        names = self._names
        personas = np.array([names.get(s, f"segment {s}") for s in segments.tolist()], dtype=object)
        policy = self.predictor.policy
        risk = tier(churn, (policy.churn_risk.medium, policy.churn_risk.high))
        value = tier(spend, self.predictor.spend_cuts)
        table = self._actions
        actions = np.array(
            [table.get(key) for key in zip(personas.tolist(), risk.tolist(), value.tolist(), strict=True)],
            dtype=object,
        )
        if any(a is None for a in actions.tolist()):  # a persona outside the table: ask the policy
            actions = assign_actions(personas, churn, spend, policy, self.predictor.spend_cuts)
        out = {
            "churn_probability": churn,
            "expected_orders": orders,
            "expected_spend": spend,
            "segment": segments.astype(np.int64),
            "persona": personas,
            "action": actions.astype(object),
        }
        if self.predictor.features.lifetime is not None:
            out[P_ALIVE] = p_alive_of(matrix, self.predictor.features)
        return out


def _action_table(predictor, personas: list[str]) -> dict[tuple[str, str, str], str]:
    """(persona, churn risk, value tier) -> action, computed by the policy for every combination."""
    from model.actions import RISK_LEVELS, assign_actions

    policy = predictor.policy
    churn_at = {"low": -1.0, "medium": policy.churn_risk.medium, "high": policy.churn_risk.high}
    cuts = predictor.spend_cuts
    spend_at = {"low": -np.inf, "medium": cuts[0], "high": cuts[1]}
    keys = [
        (p, r, v)
        for p in personas
        for r in RISK_LEVELS
        for v in RISK_LEVELS
        if np.isfinite(spend_at[v]) or v == "low"
    ]
    if not keys:
        return {}
    actions = assign_actions(
        np.array([k[0] for k in keys], dtype=object),
        np.array([churn_at[k[1]] for k in keys]),
        np.array([spend_at[k[2]] for k in keys]),
        policy,
        cuts,
    )
    return dict(zip(keys, actions.tolist(), strict=True))


def probe_batch(predictor, rows: int = 12, seed: int = 0) -> FeatureBatch:
    """Rows that exercise many branches of a bundle's trees.

    Medians, zeros, missing values, scaled values, every category level and unseen levels.
    """
    spec = predictor.features
    columns = tuple(predictor.feature_columns)
    numeric_columns, string_columns = split_columns(columns, set(spec.categorical))
    rng = np.random.default_rng(seed)
    medians = np.array([spec.medians.get(c, 0.0) for c in numeric_columns])
    scale = np.where(np.abs(medians) > 0, np.abs(medians), 1.0)
    numeric = medians + scale * rng.normal(0.0, 1.5, (rows, len(numeric_columns)))
    numeric[rng.random(numeric.shape) < 0.15] = np.nan
    numeric[0], numeric[1], numeric[2] = medians, np.nan, 0.0
    strings = np.full((rows, len(string_columns)), None, dtype=object)
    for j, column in enumerate(string_columns):
        choices = [*spec.categorical[column], None, "unseen level"]
        for i in range(rows):
            strings[i, j] = choices[(i + j) % len(choices)]
    return FeatureBatch(
        ids=np.arange(rows, dtype=np.int64),
        numeric_columns=numeric_columns,
        string_columns=string_columns,
        numeric=numeric,
        strings=strings,
        missing_views=[() for _ in range(rows)],
    )


def outputs_agree(left: dict[str, np.ndarray], right: dict[str, np.ndarray]) -> bool:
    """Same predictions (floats to 1e-5 relative, labels exactly), ``p_alive`` on both sides or neither."""
    if (P_ALIVE in left) != (P_ALIVE in right):
        return False
    for column in (*PREDICTION_COLUMNS, *((P_ALIVE,) if P_ALIVE in left else ())):
        a, b = np.asarray(left[column]), np.asarray(right[column])
        if a.shape != b.shape:
            return False
        if column in ("churn_probability", "expected_orders", "expected_spend", P_ALIVE):
            if not np.allclose(a.astype(float), b.astype(float), rtol=1e-5, atol=1e-6, equal_nan=True):
                return False
        elif [str(x) for x in a.tolist()] != [str(x) for x in b.tolist()]:
            return False
    return True


def make_runner(model: object) -> ModelRunner:
    """The fastest runner that gives the model's own answers.

    A Persona bundle gets :class:`FastPersonaRunner` after a self-check against its
    ``predict(frame)`` on probe rows; anything else (or a failed check) gets :class:`FrameRunner`.
    """
    if getattr(model, "kind", None) == "persona" and getattr(model, "cluster", None) is not None:
        reference = FrameRunner(model)  # type: ignore[arg-type]
        try:
            fast = FastPersonaRunner(model)
            probe = probe_batch(model)
            if outputs_agree(fast.predict(probe), reference.predict(probe)):
                return fast
            logger.warning("fast runner disagrees with PersonaPredictor.predict; serving through DataFrames")
        except Exception as exc:  # any surprise in the bundle's layout: use its own predict
            logger.warning("fast runner unavailable (%s); serving through DataFrames", exc)
        return reference
    return FrameRunner(model)  # type: ignore[arg-type]
