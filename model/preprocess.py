"""Feature encoding shared by training and the served bundle (pure, JSON-serializable specs).

The served model and the training job call the same functions, so feature order, category
encoding and imputation can never drift apart.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from model.lifetime import LIFETIME_COLUMNS, LIFETIME_INPUTS, LifetimeSpec, blend_orders

# Columns that are counts, amounts or durations: clustered on log1p scale.
_LOG_PREFIXES = (
    "orders_",
    "spend_",
    "sessions_",
    "review_count",
    "avg_order_value",
    "recency_days",
    "tenure_days",
    "mean_days_between_orders",
)
# Persona clustering uses these behaviors (when present) plus the text projection.
PERSONA_BEHAVIOR = (
    "recency_days",
    "tenure_days",
    "orders_90d",
    "orders_365d",
    "spend_365d",
    "avg_order_value_365d",
    "order_trend",
    "mean_days_between_orders",
    "return_share_365d",
    "discount_share_365d",
    "sessions_90d",
    "review_count_365d",
    "mean_rating_365d",
)
TEXT_PROJECTION_PREFIX = "text_pca_"
PROFILE_COLUMNS = ("region", "acquisition_channel", "age")


@dataclass(frozen=True)
class FeatureSpec:
    """How a feature frame becomes the model matrix.

    Attributes:
        columns: input feature columns in model order (the serving contract).
        categorical: levels per string column, one-hot encoded in this order (unknown -> all zero).
        medians: training medians of numeric columns (imputation for linear models and clustering).
        lifetime: a fitted BG/NBD whose expected orders and P(alive) are derived from each row's
            :data:`~model.lifetime.LIFETIME_INPUTS` and appended to the matrix (None: no derived
            inputs). They are not in ``columns``: nothing extra is fetched to compute them.
    """

    columns: tuple[str, ...]
    categorical: dict[str, tuple[str, ...]] = field(default_factory=dict)
    medians: dict[str, float] = field(default_factory=dict)
    lifetime: LifetimeSpec | None = None

    @property
    def numeric(self) -> tuple[str, ...]:
        """Input columns used as numbers (everything not categorical), in model order."""
        return tuple(c for c in self.columns if c not in self.categorical)

    @property
    def matrix_names(self) -> list[str]:
        """Column names of :func:`model_matrix` (numeric, one-hot ``col=level``, then the derived inputs)."""
        return (
            list(self.numeric) + [f"{c}={lv}" for c, lvs in self.categorical.items() for lv in lvs] + list(self.derived)
        )

    @property
    def derived(self) -> tuple[str, ...]:
        """Inputs computed from the row itself (:data:`~model.lifetime.LIFETIME_COLUMNS` with a lifetime)."""
        return LIFETIME_COLUMNS if self.lifetime is not None else ()

    def to_dict(self) -> dict:
        """Plain data for ``bundle.json`` (no pickle)."""
        out = asdict(self)
        out["lifetime"] = self.lifetime.to_dict() if self.lifetime is not None else None
        return out

    @classmethod
    def from_dict(cls, data: dict) -> FeatureSpec:
        """The inverse of :meth:`to_dict` (JSON lists back to tuples)."""
        return cls(
            columns=tuple(data["columns"]),
            categorical={k: tuple(v) for k, v in data["categorical"].items()},
            medians={k: float(v) for k, v in data["medians"].items()},
            lifetime=LifetimeSpec.from_dict(data["lifetime"]) if data.get("lifetime") else None,
        )

    def with_lifetime(self, lifetime: LifetimeSpec | None) -> FeatureSpec:
        """This spec with ``lifetime`` (its inputs must be numeric columns of the spec)."""
        if lifetime is not None:
            absent = [c for c in LIFETIME_INPUTS if c not in self.numeric]
            if absent:
                raise ValueError(f"BG/NBD inputs need the numeric columns {absent}")
        return FeatureSpec(self.columns, self.categorical, self.medians, lifetime)


def _is_categorical(series: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series))


def fit_feature_spec(frame: pd.DataFrame, columns: list[str], max_levels: int = 50) -> FeatureSpec:
    """Learn category levels and medians from a training frame.

    Args:
        frame: training rows.
        columns: feature columns in model order.
        max_levels: most frequent levels kept per categorical column.
    """
    categorical: dict[str, tuple[str, ...]] = {}
    medians: dict[str, float] = {}
    for col in columns:
        series = frame[col]
        if _is_categorical(series):
            counts = series.dropna().astype(str).value_counts()
            categorical[col] = tuple(sorted(counts.index[:max_levels]))
        else:
            med = pd.to_numeric(series, errors="coerce").median()
            medians[col] = float(med) if pd.notna(med) else 0.0
    return FeatureSpec(columns=tuple(columns), categorical=categorical, medians=medians)


def numeric_block(frame: pd.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    """Numeric columns as float64 with NaN for missing (a missing column is all NaN)."""
    out = np.full((len(frame), len(columns)), np.nan)
    for j, col in enumerate(columns):
        if col in frame.columns:
            out[:, j] = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return out


def lifetime_block(numeric: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """The derived BG/NBD inputs from a numeric block in ``spec.numeric`` order (``(rows, 0)`` without)."""
    if spec.lifetime is None:
        return np.zeros((len(numeric), 0))
    at = [spec.numeric.index(c) for c in LIFETIME_INPUTS]
    return spec.lifetime.values(*(numeric[:, j] for j in at))


P_ALIVE = "p_alive"  # the optional output of a bundle with a lifetime model


def p_alive_of(matrix: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """P(alive) per row, read from a model matrix's derived ``btyd_p_alive`` column (float64)."""
    return matrix[:, len(spec.matrix_names) - len(spec.derived) + LIFETIME_COLUMNS.index("btyd_p_alive")].astype(float)


def btyd_orders_of(matrix: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """BG/NBD's expected orders per row, read from a model matrix's derived column (float64)."""
    at = len(spec.matrix_names) - len(spec.derived) + LIFETIME_COLUMNS.index("btyd_expected_orders")
    return matrix[:, at].astype(float)


def served_orders(booster_orders: np.ndarray, matrix: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """The expected orders a bundle serves: the orders booster's, blended with BG/NBD's when the bundle says so."""
    if spec.lifetime is None or spec.lifetime.orders_weight <= 0.0:
        return booster_orders
    return blend_orders(booster_orders, btyd_orders_of(matrix, spec), spec.lifetime.orders_weight)


def model_matrix(frame: pd.DataFrame, spec: FeatureSpec, impute: bool = False) -> np.ndarray:
    """The model matrix: numeric columns (NaN kept unless ``impute``), one-hot categoricals, derived inputs."""
    numeric = numeric_block(frame, spec.numeric)
    derived = lifetime_block(numeric, spec)
    if impute:
        fill = np.array([spec.medians.get(c, 0.0) for c in spec.numeric])
        numeric = np.where(np.isnan(numeric), fill, numeric)
    blocks = [numeric]
    for col, levels in spec.categorical.items():
        values = (
            frame[col].astype("string").to_numpy(dtype=object, na_value=None)
            if col in frame.columns
            else np.full(len(frame), None, dtype=object)
        )
        blocks.append(
            np.stack([values == lv for lv in levels], axis=1).astype(float)
            if levels
            else np.zeros((len(frame), 0))
        )
    blocks.append(np.nan_to_num(derived) if impute else derived)
    return np.hstack(blocks)


@dataclass(frozen=True)
class ClusterSpec:
    """Standardization of the persona clustering space.

    Attributes:
        columns: behavior and text-projection columns used for clustering.
        log_columns: columns taken on log1p scale before standardizing.
        medians: imputation values (raw scale).
        mean / scale: standardization of the (log-)imputed values.
    """

    columns: tuple[str, ...]
    log_columns: tuple[str, ...]
    medians: tuple[float, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]

    def to_dict(self) -> dict:
        """Plain data for ``bundle.json`` (no pickle)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ClusterSpec:
        """The inverse of :meth:`to_dict` (JSON lists back to tuples)."""
        return cls(**{k: tuple(v) for k, v in data.items()})


def persona_columns(columns: list[str]) -> list[str]:
    """Clustering columns: the persona behaviors present plus the text projection.

    Falls back to every non-profile column when none of the known behaviors is present
    (a custom feature service).
    """
    chosen = [c for c in PERSONA_BEHAVIOR if c in columns]
    chosen += sorted(c for c in columns if c.startswith(TEXT_PROJECTION_PREFIX))
    return chosen or [c for c in columns if c not in PROFILE_COLUMNS]


def _raw_cluster_values(
    frame: pd.DataFrame, columns: tuple[str, ...], log_columns: tuple[str, ...], medians: np.ndarray
) -> np.ndarray:
    values = numeric_block(frame, columns)
    values = np.where(np.isnan(values), medians, values)
    for j, col in enumerate(columns):
        if col in log_columns:
            values[:, j] = np.log1p(np.clip(values[:, j], 0.0, None))
    return values


def fit_cluster_spec(frame: pd.DataFrame, columns: list[str]) -> ClusterSpec:
    """Learn imputation and standardization of the clustering space from training rows.

    Text-projection columns are imputed with 0 (the projection's center: "no reviews").
    """
    cols = tuple(columns)
    raw = numeric_block(frame, cols)
    medians = np.array(
        [
            0.0
            if c.startswith(TEXT_PROJECTION_PREFIX)
            else (float(np.nanmedian(raw[:, j])) if np.isfinite(raw[:, j]).any() else 0.0)
            for j, c in enumerate(cols)
        ]
    )
    log_cols = tuple(
        c
        for j, c in enumerate(cols)
        if c.startswith(_LOG_PREFIXES)
        and not (np.nanmin(raw[:, j]) < 0 if np.isfinite(raw[:, j]).any() else False)
    )
    values = _raw_cluster_values(frame, cols, log_cols, medians)
    mean = values.mean(axis=0) if len(values) else np.zeros(len(cols))
    scale = values.std(axis=0) if len(values) else np.ones(len(cols))
    scale = np.where(scale > 1e-12, scale, 1.0)
    return ClusterSpec(cols, log_cols, tuple(medians.tolist()), tuple(mean.tolist()), tuple(scale.tolist()))


def cluster_matrix(frame: pd.DataFrame, spec: ClusterSpec) -> np.ndarray:
    """Standardized clustering matrix for ``frame`` (imputed, log1p where configured)."""
    values = _raw_cluster_values(frame, spec.columns, spec.log_columns, np.asarray(spec.medians))
    return (values - np.asarray(spec.mean)) / np.asarray(spec.scale)


def nearest_center(matrix: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Index of the nearest center (squared Euclidean), as KMeans assigns."""
    if len(matrix) == 0:
        return np.zeros(0, dtype=int)
    d = np.square(matrix).sum(1)[:, None] - 2 * matrix @ centers.T + np.square(centers).sum(1)[None, :]
    return np.argmin(d, axis=1).astype(int)
