"""Reasons per prediction: XGBoost's own contributions, persona traits, the rule, the versions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from model.explain import EXPLAINED_MODELS, contributions, explain, persona_traits
from model.preprocess import model_matrix
from model.runner import FastPersonaRunner, probe_batch


def _frame(bundle, rows: int = 12, seed: int = 3) -> pd.DataFrame:
    batch = probe_batch(bundle, rows=rows, seed=seed)
    return pd.DataFrame({c: batch.column(c) for c in bundle.feature_columns})


def test_contributions_are_xgboosts_own_with_one_hot_levels_summed_into_their_feature(persona_bundle) -> None:
    # given a bundle with a categorical feature and rows with missing values and unseen levels
    frame = _frame(persona_bundle)
    spec = persona_bundle.features
    booster = persona_bundle.models["churn"]
    matrix = model_matrix(frame, spec).astype(np.float32)
    theirs = booster.predict(xgb.DMatrix(matrix, missing=np.nan, feature_names=booster.feature_names),
                             pred_contribs=True)

    # when explained per input feature
    by_model, names = contributions(persona_bundle, frame, ["churn"])
    mine = by_model["churn"]

    # then numeric features carry XGBoost's value, a categorical the sum over its levels
    matrix_names = spec.matrix_names
    for name in spec.numeric:
        np.testing.assert_allclose(mine[:, names.index(name)], theirs[:, matrix_names.index(name)], atol=1e-6)
    region = [j for j, n in enumerate(matrix_names) if n.startswith("region=")]
    assert len(region) > 1
    np.testing.assert_allclose(mine[:, names.index("region")], theirs[:, region].sum(1), atol=1e-6)
    np.testing.assert_allclose(mine[:, -1], theirs[:, -1], atol=1e-6)


def test_contributions_add_up_to_the_margin_the_fast_runner_served(persona_bundle) -> None:
    # given what the served (numpy-tree) runner predicts for a small batch
    batch = probe_batch(persona_bundle, rows=12, seed=8)
    runner = FastPersonaRunner(persona_bundle)
    served = runner.predict(batch)
    assert runner._trees is not None
    frame = pd.DataFrame({c: batch.column(c) for c in persona_bundle.feature_columns})

    # when the served rows are explained
    out = explain(persona_bundle, frame, served, "persona", "4", top=1000)

    # then bias + every contribution is the served output's margin (logit for churn, log for counts)
    for output in EXPLAINED_MODELS:
        for i, reason in enumerate(out):
            part = reason["contributions"][output]
            margin = part["bias"] + sum(c["contribution"] for c in part["top"])
            value = float(served[output][i])
            expected = np.log(value / (1 - value)) if output == "churn_probability" else np.log(value)
            assert margin == pytest.approx(expected, abs=1e-4), (output, i)


def test_each_explanation_names_the_rule_that_chose_the_served_action_and_every_version(persona_bundle) -> None:
    # given served predictions and a bundle trained with a text projection version
    frame = _frame(persona_bundle, rows=60, seed=2)
    served = persona_bundle.predict(frame)
    persona_bundle.metadata["text_projection_version"] = "pca8-abc"
    try:
        # when explained (top 2 contributions)
        out = explain(persona_bundle, frame, served, "persona", "4", top=2)
    finally:
        persona_bundle.metadata.pop("text_projection_version")

    # then the rule's action is the served action; the persona and versions are named
    policy = persona_bundle.policy
    for i, reason in enumerate(out):
        action = reason["action"]
        assert action["action"] == served["action"].iloc[i]
        rule = -1 if action["rule"] == "default" else int(action["rule"][6:-1])
        assert (policy.default if rule < 0 else policy.rules[rule].action) == served["action"].iloc[i]
        assert reason["persona"]["name"] == served["persona"].iloc[i]
        assert all(len(reason["contributions"][o]["top"]) == 2 for o in EXPLAINED_MODELS)
        assert reason["versions"] == {"model": "persona", "model_version": "4",
                                      "feature_service": "churn_model_v2", "text_projection": "pca8-abc"}
    assert len({r["action"]["rule"] for r in out}) > 1


def test_persona_traits_are_the_centers_largest_standardized_coordinates(persona_bundle) -> None:
    # given a persona's center in the standardized clustering space
    center = np.asarray(persona_bundle.centers[0])
    strongest = int(np.argmax(np.abs(center)))

    # when its traits are listed
    traits = persona_traits(persona_bundle, 0)

    # then the first is the coordinate furthest from the population, with its sign
    assert traits[0]["feature"] == persona_bundle.cluster.columns[strongest]
    assert traits[0]["z"] == pytest.approx(center[strongest], abs=1e-3)
    assert traits[0]["direction"] == ("above" if center[strongest] > 0 else "below")
    assert len(traits) == 3
