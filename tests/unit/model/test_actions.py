"""Action policy: validation with file/key/reason errors, and first-match assignment."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
import yaml

from core.errors import PersonaError
from model.actions import assign_actions, load_policy, parse_policy, tier, value_cutpoints
from training.config import DEFAULT_POLICY_PATH

if TYPE_CHECKING:
    from pathlib import Path

POLICY = {
    "churn_risk": {"medium": 0.3, "high": 0.6},
    "value_tier": {"medium": 0.5, "high": 0.8},
    "actions": ["retention_offer", "upsell", "win_back", "nurture", "none"],
    "rules": [
        {"segment": "lapsed*", "action": "win_back"},
        {"churn_risk": "high", "value_tier": "high", "action": "retention_offer"},
        {"churn_risk": "low", "value_tier": "high", "action": "upsell"},
        {"segment": "*bargain hunters", "churn_risk": "medium", "action": "nurture"},
    ],
    "default": "none",
}


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_shipped_policy_is_valid() -> None:
    # given / when
    policy = load_policy(DEFAULT_POLICY_PATH)
    # then
    assert {"retention_offer", "upsell", "win_back", "nurture", "none"} <= set(policy.actions)
    assert policy.churn_risk.medium < policy.churn_risk.high


@pytest.mark.parametrize(
    ("mutate", "key", "reason"),
    [
        (lambda p: p.update(colour="red"), "colour", "Extra inputs"),
        (lambda p: p["rules"][1].update(action="discount"), "rules.1.action", "not one of actions"),
        (lambda p: p["rules"][0].update(churn_risk="extreme"), "rules.0.churn_risk", "Input should be"),
        (lambda p: p["churn_risk"].update(medium=0.9), "churn_risk", "must be <= high"),
        (lambda p: p.pop("default"), "default", "Field required"),
    ],
)
def test_bad_policy_names_file_key_and_reason(tmp_path: Path, mutate, key: str, reason: str) -> None:
    # given a policy with one bad entry
    data = yaml.safe_load(yaml.safe_dump(POLICY))
    mutate(data)
    path = _write(tmp_path, data)
    # when / then
    with pytest.raises(PersonaError) as err:
        load_policy(path)
    message = str(err.value)
    assert str(path) in message
    assert key in message
    assert reason in message


def test_missing_and_non_mapping_files_are_clear(tmp_path: Path) -> None:
    # given / when / then
    with pytest.raises(PersonaError, match="not found"):
        load_policy(tmp_path / "nope.yaml")
    with pytest.raises(PersonaError, match="expected a mapping"):
        load_policy(_write(tmp_path, ["a", "b"]))


def test_tier_cut_points_are_inclusive() -> None:
    # given / when
    tiers = tier(np.array([0.1, 0.3, 0.59, 0.6, 0.99]), (0.3, 0.6))
    # then
    assert tiers.tolist() == ["low", "medium", "medium", "high", "high"]


def test_first_matching_rule_wins_and_default_applies() -> None:
    # given
    policy = parse_policy(POLICY)
    personas = np.array(
        [
            "lapsed light buyers",
            "loyal high spenders",
            "loyal high spenders",
            "at-risk bargain hunters",
            "steady regulars",
        ],
        dtype=object,
    )
    churn = np.array([0.9, 0.7, 0.1, 0.4, 0.4])
    spend = np.array([500.0, 500.0, 500.0, 10.0, 10.0])
    # when
    actions = assign_actions(personas, churn, spend, policy, spend_cuts=(100.0, 400.0))
    # then
    assert actions.tolist() == ["win_back", "retention_offer", "upsell", "nurture", "none"]


def test_value_cutpoints_follow_policy_quantiles() -> None:
    # given
    policy = parse_policy(POLICY)
    # when
    cuts = value_cutpoints(np.arange(101, dtype=float), policy)
    # then
    assert cuts == (50.0, 80.0)
