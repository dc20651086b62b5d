"""Request and response models of the serving API (the OpenAPI contract).

Requests forbid unknown fields and non-finite numbers. Batch limits are documented here
(``maxItems``) but enforced by the predictor, so an oversized batch gets 413, not 400.
Feature rows are validated field by field against the loaded model's feature columns
(:meth:`serving.predictor.ServingPredictor.feature_batch`), since those change with the model.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from serving.predictor import INT64_MAX, INT64_MIN, MAX_BATCH

CustomerId = Annotated[
    StrictInt, Field(ge=INT64_MIN, le=INT64_MAX, description="Customer id (64-bit integer).")
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class PredictRequest(_Request):
    """Customers to predict, by id (features come from the online store)."""

    customer_ids: list[CustomerId] = Field(
        min_length=1,
        description=f"1 to {MAX_BATCH} customer ids (more: 413).",
        json_schema_extra={"maxItems": MAX_BATCH},
        examples=[[1, 2, 3]],
    )
    explain: StrictBool = Field(
        default=False,
        description="Also return each prediction's reasons: top feature contributions (XGBoost "
        "TreeSHAP), the persona's distinguishing traits, the policy rule behind the action and "
        "every version involved.",
    )


class PredictTargetRequest(_Request):
    """Customers to predict with a custom target's model (``persona train --labels L --target T``)."""

    target: str | None = Field(
        default=None, description="The label column the model was trained on: serves `<registered_model>-<target>`.",
        examples=["upgraded"],
    )
    model: str | None = Field(
        default=None, description="The registered model in full (`persona-<target>`), instead of or beside `target`.",
    )
    version: StrictInt | None = Field(
        default=None, ge=1, description="A registered version instead of the champion (default: the champion).",
    )
    customer_ids: list[CustomerId] = Field(
        min_length=1,
        description=f"1 to {MAX_BATCH} customer ids (more: 413).",
        json_schema_extra={"maxItems": MAX_BATCH},
        examples=[[1, 2, 3]],
    )


class TargetPrediction(BaseModel):
    """One customer's prediction of a custom target (or cold start, with the reason)."""

    customer_id: int
    status: Literal["ok", "cold_start"]
    prediction: float | None = Field(
        description="The model's prediction (a probability for classification, the value for regression); "
        "the same number `persona score --model` writes for the same feature values."
    )
    model: str
    model_version: str
    features_as_of: dict[str, str | None] = Field(description="Feature view -> event time (UTC) of the row served.")
    feature_age_seconds: float | None
    cold_start_reason: str | None


class PredictTargetResponse(BaseModel):
    """Predictions of a custom target, in request order."""

    request_id: str
    model: str
    model_version: str
    predictions: list[TargetPrediction]


class FeatureRow(_Request):
    """One what-if row: the model's feature columns (null for unknown values)."""

    customer_id: CustomerId | None = Field(default=None, description="Optional id, recorded in the log.")
    features: dict[str, Any] = Field(
        description="Feature name -> value: a finite number for numeric features, a string for "
        "categorical ones, or null. Exactly the loaded model's feature columns "
        "(see model_info).",
        json_schema_extra={
            "additionalProperties": {"anyOf": [{"type": "number"}, {"type": "string"}], "nullable": True}
        },
        examples=[{"recency_days": 12.0, "orders_90d": 3, "region": "north"}],
    )


class PredictFeaturesRequest(_Request):
    """Predict from caller-supplied features (what-if, customers not yet in the store)."""

    rows: list[FeatureRow] = Field(
        min_length=1,
        description=f"1 to {MAX_BATCH} rows (more: 413).",
        json_schema_extra={"maxItems": MAX_BATCH},
    )
    explain: StrictBool = Field(default=False, description="Also return each prediction's reasons (see predict).")


class SimilarRequest(_Request):
    """A customer and how many neighbours to return."""

    customer_id: CustomerId
    k: StrictInt = Field(default=10, ge=1, le=100, description="Number of neighbours (1-100).")


class EmptyRequest(_Request):
    """No parameters."""


class Contribution(BaseModel):
    """One feature's share of a model's margin (XGBoost TreeSHAP; one-hot levels summed)."""

    feature: str
    value: float | int | str | None
    contribution: float


class ModelContributions(BaseModel):
    """The largest contributions to one output; bias plus all contributions is the margin."""

    unit: Literal["log-odds", "log"]
    bias: float
    top: list[Contribution]


class PersonaTrait(BaseModel):
    """How far the persona's center sits from the training population, in standard deviations."""

    feature: str
    z: float
    direction: Literal["above", "below"]


class PersonaReason(BaseModel):
    """The persona and what distinguishes it."""

    segment: int
    name: str
    traits: list[PersonaTrait]


class ActionReason(BaseModel):
    """The action policy rule that chose the action, and the tiers it matched on."""

    rule: str = Field(description="`rules[i]` of the policy, or `default`.")
    action: str
    churn_risk: Literal["low", "medium", "high"]
    value_tier: Literal["low", "medium", "high"]
    matched: str


class Explanation(BaseModel):
    """Why this prediction: contributions per output, persona traits, the rule, the versions."""

    contributions: dict[str, ModelContributions]
    persona: PersonaReason
    action: ActionReason
    versions: dict[str, str | None] = Field(
        description="model, model_version, feature_service, text_projection (null when the model has none)."
    )


class OfferUplift(BaseModel):
    """One offer's expected effect of a contact on this customer (X-learner; negative: it puts them off)."""

    conversion: float | None = Field(description="Change in the probability of converting in the response window.")
    spend: float | None = Field(description="Change in spend in the response window.")


class NextBestAction(BaseModel):
    """The offer worth most for this customer: expected incremental value minus its cost per contact."""

    offer: str | None = Field(description="The offer; null when no offer pays for its contact.")
    expected_uplift: float | None = Field(description="The best offer's expected conversion uplift.")
    expected_value: float | None = Field(
        description="Expected incremental value minus cost per contact of the best offer (the same "
        "decision as `persona campaign plan`, before its budget)."
    )
    reason: str


class CustomerPrediction(BaseModel):
    """One customer's prediction (or cold start, with the reason)."""

    customer_id: int | None
    status: Literal["ok", "cold_start"]
    churn_probability: float | None = Field(description="Probability of churn in the horizon (0-1).")
    expected_orders: float | None
    expected_spend: float | None
    segment: int | None
    persona: str | None
    action: str | None
    p_alive: float | None = Field(
        default=None,
        description="BG/NBD's probability that the customer is still active (0-1); null when the model "
        "has no lifetime part or for a cold start.",
    )
    model_version: str
    features_as_of: dict[str, str | None] = Field(
        description="Feature view -> event time (UTC) of the row served; empty for predict_features."
    )
    feature_age_seconds: float | None = Field(description="Age of the oldest feature row served.")
    cold_start_reason: str | None = Field(
        description="Why the customer was not predicted (null when predicted)."
    )
    explanation: Explanation | None = Field(
        default=None, description="Present only when the request asked to explain (null for a cold start)."
    )
    uplift: dict[str, OfferUplift] | None = Field(
        default=None,
        description="Offer -> expected uplift; present only when an uplift champion is served "
        "(`persona train --uplift`), null for a cold start.",
    )
    next_best_action: NextBestAction | None = Field(
        default=None, description="Present only with an uplift champion; null for a cold start."
    )
    uplift_model_version: str | None = Field(default=None, description="The uplift version that answered.")


class PredictResponse(BaseModel):
    """Predictions in request order."""

    request_id: str
    model_version: str
    predictions: list[CustomerPrediction]


class Neighbour(BaseModel):
    """A similar customer (cosine similarity of review-text embeddings)."""

    customer_id: int
    score: float


class SimilarResponse(BaseModel):
    """The most similar customers, best first."""

    customer_id: int
    neighbours: list[Neighbour]


class ModelInfo(BaseModel):
    """What is being served and the state of the champion watcher."""

    ready: bool
    ready_reason: str = Field(description="Why the service is (not) ready: model loaded, online store answering.")
    model_name: str
    model_version: str | None
    champion_version: str | None
    feature_service: str | None
    feature_columns: list[str]
    string_columns: list[str]
    views: list[str]
    loaded_at: str | None
    last_checked_at: str | None
    last_error: str | None = Field(description="Why the latest champion could not be loaded, if so.")
    uplift: dict[str, Any] = Field(
        default_factory=dict,
        description="The uplift champion: model_name, champion_version, version served, offers, costs, "
        "value_per_conversion, last_error (why none is served, if so).",
    )
    targets: dict[str, Any] = Field(
        default_factory=dict,
        description="Custom-target models served so far (`predict_target`): name -> champion_version, "
        "model_version served, last_error, rows_logged.",
    )
    prediction_log: dict[str, Any]


class ErrorResponse(BaseModel):
    """Every 4xx/5xx body: what was wrong, and the field when one is to blame."""

    error: str
    field: str | None = None
    detail: str | None = Field(default=None, description="Every validation error, '; '-separated (400 only).")
