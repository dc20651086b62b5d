"""The served process loads the registered uplift champion beside the churn champion and answers with both."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.conftest import copy_home, matured_campaigns

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration


def test_predict_carries_the_uplift_champions_next_best_action(champion_home: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from campaign.plan import latest_features
    from campaign.train import UpliftJob
    from campaign.uplift import UpliftConfig
    from core.runtime import using
    from core.settings import load_settings
    from model.registry import configure_mlflow, move_alias
    from serving.runtime import ServingRuntime

    # given the champion home, and an uplift model registered from its customers' features
    home = copy_home(champion_home, tmp_path / "home")
    monkeypatch.setenv("PERSONA_HOME", str(home))
    settings = load_settings()
    runtime = ServingRuntime(settings)
    before = runtime.start()
    try:
        plain = before.predict_customers([1, 2], "r0").results
        assert before.info()["uplift"]["last_error"].startswith("no uplift champion registered")
    finally:
        runtime.stop()
    with using(settings):
        features = latest_features(settings, "churn_model_v1")
        result = UpliftJob(settings, config=UpliftConfig(n_estimators=20)).run(frame=matured_campaigns(features))
    if result.decision.alias != "champion":  # tiny data: serve it anyway
        move_alias(configure_mlflow(settings), result.model_name, "champion", result.version, "serving test")

    # when the served process starts
    runtime = ServingRuntime(settings).start()
    try:
        results = runtime.predict_customers([1, 2], "r1").results
        info = runtime.info()
    finally:
        runtime.stop()

    # then before it: no uplift fields; with it: every offer's uplift and the next best action, priced
    assert all("next_best_action" not in r for r in plain)
    assert info["uplift"]["version"] == result.version
    assert info["uplift"]["costs"] == {"discount": 1.5}
    assert info["uplift"]["last_error"] is None
    for answer in results:
        assert answer["uplift_model_version"] == result.version
        assert set(answer["uplift"]) == {"discount"}
        action = answer["next_best_action"]
        assert action["expected_value"] == pytest.approx(
            answer["uplift"]["discount"]["conversion"] * result.predictor.metadata["spend_per_conversion"] - 1.5)
