"""The customer_scores rows: one per customer and as-of, the latest scoring of an as-of wins."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.transforms.scores import scores_frame
from scoring.publish import merge_scores

T0, T1 = pd.Timestamp("2025-03-02", tz="UTC"), pd.Timestamp("2025-03-09", tz="UTC")


def _scored(churn: list[float]) -> pd.DataFrame:
    n = len(churn)
    return pd.DataFrame({"customer_id": np.arange(1, n + 1), "churn_probability": churn,
                         "expected_orders": 1.0, "expected_spend": 20.0, "segment": 2,
                         "persona": "loyal", "action": "upsell"})


def test_scores_rows_carry_the_model_version_persona_id_and_a_null_p_alive_when_absent() -> None:
    # given scoring output without p_alive
    # when turned into source rows
    rows = scores_frame(_scored([0.1, 0.2]), T0, T1, "persona", "7").to_pandas()

    # then each row has the as-of, the model and version, the persona id and a null p_alive
    assert rows["event_timestamp"].tolist() == [T0, T0]
    assert rows[["model", "model_version"]].drop_duplicates().values.tolist() == [["persona", "7"]]
    assert rows["persona_id"].tolist() == [2, 2]
    assert rows["p_alive"].isna().all()


def test_rescoring_an_as_of_replaces_its_rows_and_keeps_other_as_ofs() -> None:
    # given scores at T0 and T1, then T0 scored again by another version
    first = scores_frame(_scored([0.1, 0.2]), T0, T0, "persona", "1").to_pandas()
    second = scores_frame(_scored([0.3, 0.4]), T1, T1, "persona", "1").to_pandas()
    again = scores_frame(_scored([0.5, 0.6]), T0, T1 + pd.Timedelta(days=1), "persona", "2").to_pandas()

    # when merged in that order
    merged = merge_scores(merge_scores(first, second), again)

    # then T0 holds the new version's scores and T1 is untouched
    at = merged.set_index(["event_timestamp", "customer_id"])
    assert len(merged) == 4
    assert at.loc[(T0, 1), "churn_probability"] == 0.5
    assert at.loc[(T0, 2), "model_version"] == "2"
    assert at.loc[(T1, 2), "churn_probability"] == 0.4
