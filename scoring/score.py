"""Batch scoring: every customer known at ``as_of``, scored by a registered model from offline features.

Any registered Persona model scores: the persona bundle (``persona``, the settings'
``registered_model``) writes churn, value, persona and action columns; a custom target's model
(registered as ``<registered_model>-<target>``, e.g. ``persona-upgraded``) writes ``prediction``.
Features are retrieved here; predictions run on the engine the settings name, per customer
partition on Ray, and are the same either way (every output row depends on its own row only).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from core.contract import PREDICTION_COLUMNS
from core.errors import PersonaError
from engine.runner import map_rows, open_engine
from model.preprocess import P_ALIVE
from model.registry import CHAMPION

if TYPE_CHECKING:
    from core.settings import Settings
    from engine.runner import Engine
    from model.bundle import PersonaPredictor

ENTITY_KEY = "customer_id"
TIMESTAMP = "event_timestamp"
SCORE_COLUMNS = (ENTITY_KEY, *PREDICTION_COLUMNS, "model_version")
TARGET_SCORE_COLUMNS = (ENTITY_KEY, "prediction", "model_version")


def known_customers(
    customers: pd.DataFrame | None, transactions: pd.DataFrame | None, as_of: pd.Timestamp
) -> pd.Series:
    """Customers known at ``as_of``: signed up, or with a transaction, at or before it (sorted ids)."""
    ids = []
    if customers is not None and "signup_date" in customers:
        signup = pd.to_datetime(customers["signup_date"], utc=True)
        ids.append(customers.loc[signup <= as_of, ENTITY_KEY])
    if transactions is not None and len(transactions):
        ts = pd.to_datetime(transactions[TIMESTAMP], utc=True)
        ids.append(transactions.loc[ts <= as_of, ENTITY_KEY])
    if not ids:
        return pd.Series([], dtype="int64", name=ENTITY_KEY)
    return pd.Series(pd.unique(pd.concat(ids).astype("int64")), name=ENTITY_KEY).sort_values(
        ignore_index=True
    )


def default_as_of(settings: Settings) -> pd.Timestamp:
    """The newest snapshot time (midnight after the latest ingested event)."""
    from core.timegrid import snapshot_anchor
    from features.build import data_span

    return snapshot_anchor(data_span(settings)[1])


@dataclass(frozen=True)
class ScoreReport:
    """What ``persona score`` wrote."""

    path: Path
    rows: int
    model_version: str
    as_of: pd.Timestamp
    seconds: float
    actions: dict[str, int]
    model: str = "persona"
    published: str | None = None

    def summary(self) -> str:
        """A few lines for the terminal (actions only for a persona bundle)."""
        line = (
            f"scored {self.rows:,} customers at {self.as_of.isoformat()} with {self.model} v{self.model_version} "
            f"in {self.seconds:.1f} s -> {self.path}"
        )
        if self.published:
            line += "\n" + self.published
        if not self.actions:
            return line
        return line + "\nactions: " + ", ".join(f"{k} {v:,}" for k, v in self.actions.items())


def explanations(
    predictor, features: pd.DataFrame, predictions: pd.DataFrame, model: str, version: str, chunk: int = 20_000
) -> list[str]:
    """One JSON explanation per scored row (:func:`model.explain.explain`), in chunks to bound memory."""
    import json

    from model.explain import explain

    frame = features[predictor.feature_columns].reset_index(drop=True)
    outputs = predictions.reset_index(drop=True)
    out: list[str] = []
    for start in range(0, len(frame), chunk):
        part = slice(start, start + chunk)
        out += [
            json.dumps(e, separators=(",", ":"))
            for e in explain(predictor, frame.iloc[part], outputs.iloc[part], model, version)
        ]
    return out


def predict_rows(predictor: PersonaPredictor, rows: pd.DataFrame) -> pd.DataFrame:
    """The predictor's outputs for ``rows`` (one customer partition on the Ray engine; row-wise)."""
    return predictor.predict(rows)


def write_table(frame: pd.DataFrame, out: Path) -> Path:
    """Write parquet (``.parquet``) or CSV (anything else)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix in (".parquet", ".pq"):
        frame.to_parquet(out, index=False)
    else:
        frame.to_csv(out, index=False)
    return out


def score(
    settings: Settings,
    out: Path,
    as_of: pd.Timestamp | None = None,
    version: str | None = None,
    model: str | None = None,
    explain: bool = False,
    publish: bool = True,
) -> ScoreReport:
    """Score every customer known at ``as_of`` with a model's champion (or ``version``) and write ``out``.

    Args:
        settings: Persona settings.
        out: output file (``.parquet`` or ``.csv``).
        as_of: scoring time (default: the newest snapshot).
        version: a registered version instead of the champion.
        model: the registered model (default ``settings.registered_model``; a custom target's is
            ``<registered_model>-<target>``).
        explain: add an ``explanation`` column (JSON per customer: top contributions, persona
            traits, the policy rule, the versions; :mod:`model.explain`). Persona bundles only.
        publish: write a persona bundle's scores to the ``customer_scores`` feature view and
            materialize it (:mod:`scoring.publish`).

    Raises:
        PersonaError: no champion, no customers known at ``as_of``, feature retrieval failed, or
            ``explain`` for a model that is not a persona bundle, or the text features are in
            another projection than the model was trained on.
    """
    with open_engine(settings) as engine:  # connect first: an unreachable cluster fails before any work
        return _score(settings, engine, out, as_of, version, model, explain, publish)


def _score(
    settings: Settings,
    engine: Engine,
    out: Path,
    as_of: pd.Timestamp | None,
    version: str | None,
    model: str | None,
    explain: bool,
    publish: bool,
) -> ScoreReport:
    from features.build import read_raw
    from features.dataset import build_training_set
    from features.text_version import require_text_version
    from model.bundle import load_predictor
    from model.registry import alias_version, configure_mlflow

    started = time.perf_counter()
    client = configure_mlflow(settings)
    model = model or settings.registered_model
    if version is None:
        version = alias_version(client, model, CHAMPION)
        if version is None:
            raise PersonaError(
                f"model {model!r} has no champion yet; run `persona train` first, pass --version, or name "
                f"another model with --model (`persona models list` shows them)"
            )
    try:
        predictor = load_predictor(f"models:/{model}/{version}", settings)
    except Exception as exc:
        raise PersonaError(f"cannot load {model} v{version}: {exc}") from None
    if explain and predictor.kind != "persona":
        raise PersonaError(f"--explain needs a persona bundle; {model} v{version} predicts {predictor.target!r} only")
    require_text_version(settings, f"{model} v{version}", predictor.metadata)
    service = predictor.metadata.get("feature_service", "churn_model_v2")
    events = read_raw(settings, "transactions", columns=[ENTITY_KEY, TIMESTAMP])
    if events is None:  # custom features without transactions: the timeline is the model's own sources
        from core.timegrid import snapshot_anchor
        from features.dataset import service_timeline

        events = service_timeline(settings, service)
        if as_of is None and len(events):
            as_of = snapshot_anchor(pd.to_datetime(events[TIMESTAMP], utc=True).max())
    ts = pd.Timestamp(as_of) if as_of is not None else default_as_of(settings)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    customers = known_customers(read_raw(settings, "customers"), events, ts)
    if customers.empty:
        raise PersonaError(f"no customer is known at {ts.isoformat()}; pick a later --as-of")
    entities = pd.DataFrame({ENTITY_KEY: customers, TIMESTAMP: ts})
    features = build_training_set(settings, entities, service)
    predictions = map_rows(engine, predict_rows, features, shared=(predictor,))
    result = pd.concat(
        [features[[ENTITY_KEY]].reset_index(drop=True), predictions.reset_index(drop=True)], axis=1
    )
    result["model_version"] = str(version)
    persona = predictor.kind == "persona"
    extra = [P_ALIVE] if persona and P_ALIVE in result.columns else []  # BG/NBD's P(alive), when the model gives it
    result = result[list(SCORE_COLUMNS if persona else TARGET_SCORE_COLUMNS) + extra]
    if explain:
        result["explanation"] = explanations(predictor, features, predictions, model, str(version))
    path = write_table(result, out)
    published = None
    if persona and publish:
        from scoring.publish import publish_scores

        published = publish_scores(settings, result, ts, model, str(version)).summary()
    counts = result["action"].value_counts() if persona else pd.Series(dtype="int64")
    return ScoreReport(
        path,
        len(result),
        str(version),
        ts,
        time.perf_counter() - started,
        {str(k): int(v) for k, v in counts.items()},
        model,
        published,
    )
