"""The servable uplift model: per offer, the expected change in conversion and spend a contact makes.

An X-learner (see :mod:`campaign.uplift` for why): per outcome, one XGBoost model of the outcome
without contact (:data:`CONTROL_ARM`, the baseline), and per offer two models of the effect
itself, one learned on treated customers and one on control customers; the uplift is their
mean (the arms are randomized with equal chance). Fitting lives in :mod:`campaign.uplift`;
this module only predicts and stores, so the
registered bundle needs nothing above ``model`` (it is logged with the same entry point, trust
checks and signature as the persona bundle: :class:`model.bundle.PersonaBundle` loads it when the
bundle directory holds :data:`UPLIFT_FILE`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xgboost as xgb

from model.preprocess import FeatureSpec, model_matrix

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from mlflow.pyfunc import PyFuncModel

    from core.settings import Settings

UPLIFT_FILE = "uplift.json"
OUTCOMES = ("conversion", "spend")
CONTROL_ARM = "control"


def uplift_model_name(registered_model: str) -> str:
    """The registered uplift model beside the persona model ``registered_model``: ``<name>-uplift``."""
    return f"{registered_model}-uplift"


def uplift_column(outcome: str, offer: str) -> str:
    """The prediction column of one outcome and offer, e.g. ``uplift_conversion_discount``."""
    return f"uplift_{outcome}_{offer}"


def effect_key(outcome: str, learned_on: str, offer: str) -> str:
    """The key of one effect model: ``<outcome>/effect_<treated|control>/<offer>``."""
    return f"{outcome}/effect_{learned_on}/{offer}"


@dataclass
class UpliftPredictor:
    """Expected uplift of each offer on conversion and spend per row.

    Attributes:
        offers: offers the model knows, in output order.
        features: input columns, category levels and medians.
        models: boosters by ``<outcome>/control`` (the baseline) and ``<outcome>/effect_treated/<offer>``,
            ``<outcome>/effect_control/<offer>`` (the two effect models of each offer).
        metadata: lineage (feature service, campaigns trained on, data window).
    """

    offers: tuple[str, ...]
    features: FeatureSpec
    models: dict[str, xgb.Booster]
    metadata: dict = field(default_factory=dict)

    @property
    def feature_columns(self) -> list[str]:
        """Input feature columns in model order."""
        return list(self.features.columns)

    def _raw(self, key: str, matrix: np.ndarray) -> np.ndarray:
        if len(matrix) == 0:
            return np.zeros(0)
        return np.asarray(self.models[key].inplace_predict(matrix), dtype=float)

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``uplift_<outcome>_<offer>`` and ``baseline_<outcome>`` columns, same index as ``frame``.

        Raises:
            ValueError: ``frame`` lacks feature columns.
        """
        missing = [c for c in self.features.columns if c not in frame.columns]
        if missing:
            raise ValueError(f"feature frame lacks columns {missing}; the uplift model expects {self.feature_columns}")
        matrix = model_matrix(frame, self.features).astype(np.float32)
        return pd.DataFrame(self.combine(lambda key: self._raw(key, matrix)), index=frame.index)

    def combine(self, raw: Callable[[str], np.ndarray], baselines: bool = True) -> dict[str, np.ndarray]:
        """The output columns from each booster's raw predictions (``raw(key)``).

        One place for the X-learner's arithmetic, shared by :meth:`predict` and the serving
        runner that evaluates the same boosters without a DataFrame (:mod:`model.uplift_runner`),
        which leaves out the ``baseline_*`` columns (two boosters fewer per request).
        """
        out: dict[str, np.ndarray] = {}
        for outcome in OUTCOMES:
            if baselines:
                base = raw(f"{outcome}/{CONTROL_ARM}")
                out[f"baseline_{outcome}"] = np.clip(base, 0.0, 1.0) if outcome == "conversion" else base
            for offer in self.offers:
                out[uplift_column(outcome, offer)] = 0.5 * (raw(effect_key(outcome, "treated", offer))
                                                            + raw(effect_key(outcome, "control", offer)))
        return out

    # ---- storage (no pickle) ----
    def save(self, directory: Path) -> Path:
        """Write :data:`UPLIFT_FILE` and one XGBoost JSON file per model into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        names = {}
        for i, (key, booster) in enumerate(sorted(self.models.items())):
            names[key] = f"uplift_{i}.json"
            booster.save_model(str(directory / names[key]))
        doc = {"offers": list(self.offers), "features": self.features.to_dict(), "models": names,
               "metadata": self.metadata}
        (directory / UPLIFT_FILE).write_text(json.dumps(doc, indent=1, default=str))
        return directory

    @classmethod
    def load(cls, directory: Path) -> UpliftPredictor:
        """Read a model written by :meth:`save`."""
        directory = Path(directory)
        doc = json.loads((directory / UPLIFT_FILE).read_text())
        models = {}
        for key, name in doc["models"].items():
            booster = xgb.Booster()
            booster.load_model(str(directory / name))
            booster.set_param({"nthread": 1})
            models[key] = booster
        return cls(offers=tuple(doc["offers"]), features=FeatureSpec.from_dict(doc["features"]), models=models,
                   metadata=doc.get("metadata") or {})


def latest_offer_costs(campaigns: pd.DataFrame) -> dict[str, float]:
    """Cost per contact of each offer: its latest campaign's (by ``start``) that states one."""
    if campaigns.empty or not {"offer", "start", "cost_per_contact"} <= set(campaigns.columns):
        return {}
    known = campaigns.dropna(subset=["cost_per_contact"])
    latest = known.sort_values("start", kind="stable").drop_duplicates("offer", keep="last")
    return dict(zip(latest["offer"].astype(str), latest["cost_per_contact"].astype(float), strict=True))


def net_values(uplift: Mapping[str, np.ndarray] | pd.DataFrame, offers: Sequence[str], costs: Mapping[str, float],
               value_per_conversion: Mapping[str, float | None] | None = None) -> np.ndarray:
    """Expected incremental value minus cost per contact, one column per offer (rows x offers).

    Incremental value is the predicted incremental conversions times the offer's value per
    conversion when one is known, else the predicted incremental spend (see
    :class:`campaign.plan.PlanRequest` for why conversions times a value rank more stably).
    """
    values = value_per_conversion or {}
    columns = []
    for offer in offers:
        value = values.get(offer)
        gain = (np.asarray(uplift[uplift_column("conversion", offer)], dtype=float) * float(value)
                if value is not None else np.asarray(uplift[uplift_column("spend", offer)], dtype=float))
        columns.append(gain - float(costs[offer]))
    if not columns:
        raise ValueError("no offer to choose from")
    return np.column_stack(columns)


def load_uplift(model_uri: str, settings: Settings | None = None) -> UpliftPredictor:
    """Load a registered uplift version after the same trust checks as any Persona model.

    Raises:
        UntrustedModelError: the version fails a check.
        ValueError: the version is not an uplift model.
    """
    from model.bundle import load_trusted

    return _uplift_of(load_trusted(model_uri, settings), model_uri)


def load_packaged_uplift(
    directory: Path, tags: dict[str, str], settings: Settings, name: str, version: str
) -> UpliftPredictor:
    """An uplift version's files packaged elsewhere (a Bento's model store), after the same checks as a download.

    Raises:
        UntrustedModelError: a check failed.
        ValueError: the files are not an uplift model.
    """
    import mlflow

    from model.trust import check_downloaded

    check_downloaded(directory, tags, settings, name, version)
    return _uplift_of(mlflow.pyfunc.load_model(str(directory)), f"{name} v{version} ({directory})")


def _uplift_of(model: PyFuncModel, source: str) -> UpliftPredictor:
    from model.bundle import PersonaBundle

    bundle = model.unwrap_python_model()
    if not isinstance(bundle, PersonaBundle) or bundle.uplift is None:
        raise ValueError(f"{source} is not an uplift model")
    return bundle.uplift


__all__ = ["CONTROL_ARM", "OUTCOMES", "UPLIFT_FILE", "UpliftPredictor", "effect_key", "latest_offer_costs",
           "load_packaged_uplift", "load_uplift", "net_values", "uplift_column", "uplift_model_name"]
