"""Marketing actions from a validated policy: persona x churn risk x value tier -> action."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.errors import PersonaError, first_validation_error

RISK_LEVELS = ("low", "medium", "high")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RiskCuts(_Frozen):
    """Churn probability cut points: at or above ``medium`` is medium risk, at or above ``high`` is high."""

    medium: float = Field(ge=0.0, le=1.0)
    high: float = Field(ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> RiskCuts:
        if self.medium > self.high:
            raise ValueError(f"medium ({self.medium}) must be <= high ({self.high})")
        return self


class Rule(_Frozen):
    """One policy line; ``"*"`` matches anything and ``segment`` is a glob on the persona name."""

    segment: str = Field(default="*", min_length=1)
    churn_risk: Literal["low", "medium", "high", "*"] = "*"
    value_tier: Literal["low", "medium", "high", "*"] = "*"
    action: str = Field(min_length=1)


class ActionPolicy(_Frozen):
    """The whole policy file (see ``model/actions.yaml``)."""

    churn_risk: RiskCuts
    value_tier: RiskCuts
    actions: tuple[str, ...] = Field(min_length=1)
    rules: tuple[Rule, ...] = Field(min_length=1)
    default: str
    labels: dict[str, str] = Field(default_factory=dict)  # action -> what a marketer reads (persona cards)

    def label(self, action: str) -> str:
        """The action in plain words: its label, else its name with spaces (``win_back`` -> ``win back``)."""
        return self.labels.get(action) or action.replace("_", " ")

    @model_validator(mode="after")
    def _known_actions(self) -> ActionPolicy:
        known = set(self.actions)
        for action in self.labels:
            if action not in known:
                raise ValueError(f"labels.{action}: not one of actions {sorted(known)}")
        for i, rule in enumerate(self.rules):
            if rule.action not in known:
                raise ValueError(f"rules.{i}.action: {rule.action!r} is not one of actions {sorted(known)}")
        if self.default not in known:
            raise ValueError(f"default: {self.default!r} is not one of actions {sorted(known)}")
        return self


def parse_policy(data: object, source: str = "<policy>") -> ActionPolicy:
    """Validate a policy mapping.

    Args:
        data: the parsed YAML (a mapping).
        source: the file name to quote in errors.

    Raises:
        PersonaError: naming the file, the offending key and the reason.
    """
    if not isinstance(data, dict):
        raise PersonaError(
            f"{source}: expected a mapping with churn_risk, value_tier, actions, rules, default"
        )
    try:
        return ActionPolicy.model_validate(data)
    except ValidationError as exc:
        key, msg = first_validation_error(exc)
        raise PersonaError(f"{source}: {key}: {msg}") from None


def load_policy(path: Path) -> ActionPolicy:
    """Read and validate an action policy YAML file.

    Raises:
        PersonaError: when the file is missing, not YAML, or fails validation (file, key, reason).
    """
    path = Path(path)
    if not path.is_file():
        raise PersonaError(f"{path}: action policy file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise PersonaError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return parse_policy(data, str(path))


def tier(values: np.ndarray, cuts: tuple[float, float]) -> np.ndarray:
    """Map values to ``low``/``medium``/``high`` with cut points ``(medium, high)`` (inclusive)."""
    v = np.asarray(values, dtype=float)
    out = np.full(v.shape, "low", dtype=object)
    out[v >= cuts[0]] = "medium"
    out[v >= cuts[1]] = "high"
    return out


def value_cutpoints(expected_spend: np.ndarray, policy: ActionPolicy) -> tuple[float, float]:
    """Absolute expected-spend cut points from the policy's quantiles of a reference sample."""
    spend = np.asarray(expected_spend, dtype=float)
    spend = spend[np.isfinite(spend)]
    if len(spend) == 0:
        return (float("inf"), float("inf"))
    return (
        float(np.quantile(spend, policy.value_tier.medium)),
        float(np.quantile(spend, policy.value_tier.high)),
    )


def matching_rules(
    personas: np.ndarray,
    churn_probability: np.ndarray,
    expected_spend: np.ndarray,
    policy: ActionPolicy,
    spend_cuts: tuple[float, float],
) -> np.ndarray:
    """Index into ``policy.rules`` of the first rule that matches each customer (-1: the default).

    :func:`assign_actions` is this index mapped to the rules' actions, so the rule an explanation
    names is by construction the rule that chose the served action.
    """
    names = np.asarray(personas, dtype=object)
    risk = tier(churn_probability, (policy.churn_risk.medium, policy.churn_risk.high))
    value = tier(expected_spend, spend_cuts)
    out = np.full(names.shape, -1, dtype=np.int64)
    unique_names = set(names.tolist())
    for index, rule in enumerate(policy.rules):
        open_ = out == -1
        if not open_.any():
            break
        matching = [n for n in unique_names if fnmatch.fnmatchcase(str(n), rule.segment)]
        mask = open_ & np.isin(names, matching)
        if rule.churn_risk != "*":
            mask &= risk == rule.churn_risk
        if rule.value_tier != "*":
            mask &= value == rule.value_tier
        out[mask] = index
    return out


def assign_actions(
    personas: np.ndarray,
    churn_probability: np.ndarray,
    expected_spend: np.ndarray,
    policy: ActionPolicy,
    spend_cuts: tuple[float, float],
) -> np.ndarray:
    """The first matching rule's action per customer (``policy.default`` when none matches).

    Args:
        personas: persona name per customer.
        churn_probability: churn probability per customer.
        expected_spend: expected spend per customer.
        policy: the validated policy.
        spend_cuts: absolute expected-spend cut points (see :func:`value_cutpoints`).

    Returns:
        An object array of action names.
    """
    rules = matching_rules(personas, churn_probability, expected_spend, policy, spend_cuts)
    choices = np.array([rule.action for rule in policy.rules] + [policy.default], dtype=object)
    return choices[rules]  # -1 picks the default, the last entry


def describe_rule(
    policy: ActionPolicy, index: int, churn_probability: float, expected_spend: float,
    spend_cuts: tuple[float, float],
) -> dict[str, object]:
    """The rule at ``index`` (-1: the default) and the customer's tiers it was matched on."""
    risk = str(tier(np.array([churn_probability]), (policy.churn_risk.medium, policy.churn_risk.high))[0])
    value = str(tier(np.array([expected_spend]), spend_cuts)[0])
    if index < 0:
        return {"rule": "default", "action": policy.default, "churn_risk": risk, "value_tier": value,
                "matched": "no rule matched; the policy's default"}
    rule = policy.rules[index]
    return {
        "rule": f"rules[{index}]",
        "action": rule.action,
        "churn_risk": risk,
        "value_tier": value,
        "matched": f"segment {rule.segment!r}, churn_risk {rule.churn_risk}, value_tier {rule.value_tier}",
    }
